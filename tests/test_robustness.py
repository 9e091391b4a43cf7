"""Never lose a run: signals, kill -9, the workdir lock, divergence, exact resume, bad flags and files."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import checkpoint_tensors, interrupted_copy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def trainer_flags(workdir, data_dir, **overrides):
    flags = {"workdir": workdir, "dataset": "isic_skin_cancer/real_64", "data_dir": data_dir, "batch_size": 4,
             "precision": "float32", "train_steps": 100_000, "checkpoint_every": 2, "summary_every": 1,
             "image_every": 1000, "steps_per_call": 1}
    flags.update(overrides)
    return [os.path.join(REPO, "trainer.py")] + [f"--{k}={v}" for k, v in flags.items()]


def run(args, check=True, env=ENV):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env,
                            timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}:\n{result.stderr[-3000:]}")
    return result


class Background:
    """A trainer in the background whose stderr goes to a file we can poll."""

    def __init__(self, args, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen([sys.executable, *args], stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=REPO, env=ENV)

    def text(self):
        return open(self.log_path).read()

    def wait_for(self, needle, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"trainer exited {self.process.returncode} before '{needle}':\n"
                                     f"{self.text()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"no '{needle}' within {timeout}s:\n{self.text()[-3000:]}")

    def finish(self, timeout=300):
        code = self.process.wait(timeout=timeout)
        self.log.close()
        return code


def last_progress_step(text):
    steps = [int(line.split("step ")[1].split("/")[0]) for line in text.splitlines()
             if "] step " in line and "/" in line.split("step ")[1]]
    return max(steps) if steps else 0


def checkpoint_step(workdir):
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def test_sigterm_checkpoints_the_current_step_and_resumes_there(tmp_path, isic_data_dir):
    workdir = str(tmp_path / "work")
    args = trainer_flags(workdir, isic_data_dir, checkpoint_every=1000)
    trainer = Background(args, tmp_path / "log")
    trainer.wait_for("] step 3/")
    trainer.process.send_signal(signal.SIGTERM)
    assert trainer.finish() == 0
    text = trainer.text()
    stopped_at = int(text.split("Stopped by SIGTERM at step ")[1].split(";")[0])
    assert stopped_at >= 3
    assert checkpoint_step(workdir) == stopped_at
    assert json.load(open(os.path.join(workdir, "generator.json")))["step"] == stopped_at
    resumed = run(trainer_flags(workdir, isic_data_dir, train_steps=stopped_at + 1))
    assert f"Restored step {stopped_at} " in resumed.stderr


def test_kill_9_at_random_moments_never_loses_more_than_checkpoint_every(tmp_path, isic_data_dir):
    workdir = str(tmp_path / "work")
    rng = random.Random(0)
    previous = 0
    for attempt in range(3):
        trainer = Background(trainer_flags(workdir, isic_data_dir), tmp_path / f"log{attempt}")
        if attempt == 0:
            trainer.wait_for("] step 1/")  # make sure the first kill lands in training
        time.sleep(rng.uniform(0.5, 4.0))
        trainer.process.kill()
        trainer.finish()
        text = trainer.text()
        restored = checkpoint_step(workdir)
        assert restored >= previous, "a checkpoint went missing"
        assert last_progress_step(text) - restored <= 2, f"lost more than --checkpoint_every steps:\n{text}"
        if "Restored step" in text:  # a kill may land before the restore
            assert f"Restored step {previous} " in text
        previous = restored
    # A kill mid-write leaves temporaries (a timing the random kills above may miss, so plant them too):
    # the next trainer removes them, the last checkpoint restores and the exports load.
    dead = subprocess.Popen(["true"])  # a pid whose process has exited
    dead.wait()
    planted = [os.path.join(workdir, f".tmp{dead.pid}_discriminator.keras"),
               os.path.join(workdir, "samples", f".tmp{dead.pid}_step_000001.png"),
               os.path.join(workdir, "checkpoints", "checkpoint.tmp" + "0f" * 16)]
    for path in planted:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").write(b"half")
    resumed = run(trainer_flags(workdir, isic_data_dir, train_steps=previous + 1))
    assert not any(os.path.exists(path) for path in planted)
    assert previous > 0 and f"Restored step {previous} " in resumed.stderr
    run(["sample.py", f"--workdir={workdir}", "--label=0", "--num=1", f"--out_dir={tmp_path / 'out'}"])
    leftovers = [n for _, dirs, names in os.walk(workdir) for n in dirs + names if ".tmp" in n or "_temp" in n]
    assert leftovers == []


def test_second_trainer_on_a_workdir_refuses_and_stale_lock_is_taken_over(tmp_path, isic_data_dir):
    workdir = str(tmp_path / "work")
    first = Background(trainer_flags(workdir, isic_data_dir), tmp_path / "log")
    first.wait_for("] step 1/")
    second = run(trainer_flags(workdir, isic_data_dir), check=False)
    assert second.returncode != 0 and "Traceback" not in second.stderr
    assert f"in use by another trainer (pid {first.process.pid} " in second.stderr
    first.process.kill()
    first.finish()
    third = run(trainer_flags(workdir, isic_data_dir, train_steps=1))
    assert f"stale lock" in third.stderr and f"pid {first.process.pid}" in third.stderr


def test_divergence_stops_with_the_step_and_keeps_the_last_good_export(tmp_path, isic_data_dir, monkeypatch):
    from cgan import train
    from cgan.training import step
    from cgan.core.config import TrainConfig
    from cgan.core.errors import UserError
    config = TrainConfig(workdir=str(tmp_path), dataset="isic_skin_cancer/real_64", data_dir=str(isic_data_dir),
                         batch_size=4, precision="float32", train_steps=2, checkpoint_every=2, summary_every=1,
                         steps_per_call=1)
    train.train_and_evaluate(config)
    export_before = (tmp_path / "generator.keras").read_bytes()
    real_run_steps = step.TrainStep.run_steps

    def diverge_at_step_4(self, iterator, num_steps):
        metrics = real_run_steps(self, iterator, num_steps)
        return {**metrics, "g_loss": float("nan")} if int(self.step.numpy()) >= 4 else metrics

    monkeypatch.setattr(step.TrainStep, "run_steps", diverge_at_step_4)
    with pytest.raises(UserError, match="non-finite loss at step 4"):
        train.train_and_evaluate(dataclasses.replace(config, train_steps=10))
    assert checkpoint_step(str(tmp_path)) == 2
    assert (tmp_path / "generator.keras").read_bytes() == export_before

    monkeypatch.setattr(step.TrainStep, "run_steps", real_run_steps)
    monkeypatch.setattr(step.TrainStep, "weights_finite", lambda self: False)
    with pytest.raises(UserError, match="non-finite weights at step 4"):
        train.train_and_evaluate(dataclasses.replace(config, train_steps=10))
    assert checkpoint_step(str(tmp_path)) == 2
    assert (tmp_path / "generator.keras").read_bytes() == export_before


# Every option with state of its own: the EMA generator, spectral norm's power-iteration vectors,
# conditional batch norm, the projection embedding, attention's γ, the coverage pool's matched latents
# (refreshed at step 3: the resumed run uses those restored at step 2 first), the layout head and judge;
# R1, hinge, balanced sampling and the diversity term change what the step computes and draws.
_ALL_OPTIONS = dict(ema_decay=0.9, ema_start=1, r1_gamma=1.0, loss="hinge", balanced=True,
                    g_conditioning="cbn", g_spectral_norm=True, g_attention=16, d_conditioning="projection",
                    d_norm="spectral", d_attention=16, mode_seeking=1.0, coverage=1.0, coverage_every=3,
                    diversity=1.0, unconditional_below=8)


# The limited-data options, each with state or a schedule that a resume must continue exactly: LeCam's
# anchors, the adaptive augmentation probability and its accumulators (moving every step here), the
# class-signal ramp across the resume point, and the residual networks; the shape-diversity terms in the
# other feature spaces, the coverage pool refreshed at the resume step itself. One replica: test_ada
# checks the accumulators' cross-replica sum.
_SMALL_DATA_OPTIONS = dict(arch="resnet", g_channels=8, d_channels=8, d_conditioning="projection",
                           d_norm="spectral", loss="hinge", lecam=0.1, ada_target=0.6, ada_interval=1,
                           ada_speed_images=16, transition_start=1, transition_end=3, ema_decay=0.9,
                           g_learning_rate=1e-4, d_learning_rate=4e-4, coverage=0.5, coverage_every=2,
                           coverage_space="discriminator", diversity=0.5, diversity_space="structure",
                           unconditional_below=16)


# PacGAN's packs of 4 (of 2 the same code): the stream's same-class partners, a quarter of a batch drawn per
# step, split over 2 replicas, with the terms that pair the batch's halves.
_PACKED_OPTIONS = dict(pack=4, batch_size=8, d_conditioning="projection", d_norm="spectral", loss="hinge", ema_decay=0.9,
                       ema_start=1, balanced=True, mirror="flip", mode_seeking=1.0,
                       coverage=1.0, coverage_every=3, coverage_space="structure", diversity=1.0,
                       diversity_space="structure")


@pytest.mark.parametrize("replicas,options", [
    (1, {}),
    (2, dict(augment="color,translation,cutout", mirror="flip_rot90", **_ALL_OPTIONS)),
    (1, dict(augment="color,translation,cutout", **_SMALL_DATA_OPTIONS)),
    (2, dict(augment="translation", **_PACKED_OPTIONS))],
    ids=["baseline", "all-options", "small-data-options", "packed"])
def test_deterministic_resume_is_bitwise_equal(tmp_path, isic_data_dir, replicas, options):
    common = dict(deterministic=True, cpu_replicas=replicas, steps_per_call=2, **options)
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    run(trainer_flags(straight, isic_data_dir, train_steps=4, **common))
    interrupted_copy(straight, split, 2)
    assert "Restored step 2" in run(trainer_flags(split, isic_data_dir, train_steps=4, **common)).stderr
    a, b = checkpoint_tensors(straight), checkpoint_tensors(split)
    assert a.keys() == b.keys() and len(a) > 80
    if "ema_decay" in options:
        ema = [name for name in a if name.startswith("ema_generator/")]
        assert ema and any("spectral" in name or "/u/" in name or "vector" in name for name in a), sorted(a)[:40]
    if "lecam" in options:
        assert any(name.startswith("lecam/") for name in a) and any(name.startswith("ada/") for name in a)
    if "coverage" in options:
        assert "coverage" in {name.split("/")[0] for name in a}
    if "unconditional_below" in options:
        # (the layout head's weights are saved once, under G's optimizer, which also tracks them)
        assert {name.split("/")[0] for name in a} >= {"layout_discriminator", "layout_optimizer"}
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("flag,message", [
    ("--batch_size=0", "batch_size"),
    ("--train_steps=-5", "train_steps"),
    ("--precision=half", "precision"),
    ("--dataset=cifar10", "unknown --dataset"),
    ("--batch_size=3 --cpu_replicas=2", "multiple of 2"),
    ("--batch_size=6 --cpu_replicas=2 --pack=2", "--pack=2 packs the images of each replica's batch"),
    ("--batch_size=12 --cpu_replicas=2 --pack=4", "leaves part of a pack; use a multiple of 8"),
    ("--workdir=/etc/hostname/run", "cannot write"),
    ("--augment=color,flip", "unknown augmentation flip"),
    ("--loss=wasserstein", "--loss"),
    ("--g_attention=12", "attention"),
    ("--d_norm=layer", "--d_norm"),
    ("--ema_decay=1.5", "--ema_decay"),
])
def test_bad_flags_are_one_clear_line(tmp_path, isic_data_dir, flag, message):
    args = trainer_flags(str(tmp_path / "work"), isic_data_dir, train_steps=1) + flag.split()
    result = run(args, check=False)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "work" / "checkpoints")


def test_corrupt_model_file_is_one_clear_line(tmp_path):
    model = tmp_path / "generator.keras"
    model.write_bytes(b"not a zip file")
    (tmp_path / "generator.json").write_text(json.dumps({"class_names": ["a"], "latent_dim": 4}))
    result = run(["sample.py", f"--model={model}", "--label=0", f"--out_dir={tmp_path / 'out'}"], check=False)
    assert result.returncode != 0 and "cannot load" in result.stderr and "Traceback" not in result.stderr
    assert model.read_bytes() == b"not a zip file"


def _free_ports(count):
    import socket
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_train_together(tmp_path, isic_data_dir):
    workdir = str(tmp_path / "work")
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    args = trainer_flags(workdir, isic_data_dir, strategy="multi_worker", train_steps=4, checkpoint_every=2,
                         steps_per_call=2)
    workers = []
    for index in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        log = open(tmp_path / f"worker{index}.log", "w")
        workers.append((subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                                         cwd=REPO, env=env), log))
    for process, log in workers:
        assert process.wait(timeout=240) == 0, (tmp_path / "worker0.log").read_text()[-2000:] + \
            (tmp_path / "worker1.log").read_text()[-2000:]
        log.close()
    chief_log = (tmp_path / "worker0.log").read_text()
    assert "2 replica(s) on 2 worker(s)" in chief_log and "step 4/4" in chief_log
    assert "step 4/4" not in (tmp_path / "worker1.log").read_text()  # only the chief reports
    assert checkpoint_step(workdir) == 4
    assert json.load(open(os.path.join(workdir, "generator.json")))["step"] == 4
    assert json.load(open(os.path.join(workdir, "config.json")))["num_workers"] == 2
    assert not [name for name in os.listdir(workdir) if name.startswith(".worker")]


def test_multi_worker_without_tf_config_is_one_clear_line(tmp_path, isic_data_dir):
    env = {k: v for k, v in ENV.items() if k != "TF_CONFIG"}
    result = run(trainer_flags(str(tmp_path / "w"), isic_data_dir, strategy="multi_worker"), check=False, env=env)
    assert result.returncode != 0 and "TF_CONFIG" in result.stderr and "Traceback" not in result.stderr
