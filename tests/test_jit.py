"""--jit_compile: how auto resolves, what is compiled, and that XLA changes the numbers only by rounding."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan.inputs import input_pipeline

from cgan.training import distribute, step
from cgan.core.config import TrainConfig
from cgan.core.errors import UserError
from conftest import REPO, checkpoint_tensors, interrupted_copy

GPU = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
CLASS_NAMES = tuple(f"class{i}" for i in range(9))


def _resolve(gpus, **options):
    return distribute.resolve_jit_compile(TrainConfig(workdir="w", **options), gpus=gpus)


def test_auto_is_off_on_a_cpu_and_on_where_a_gpu_is_visible():
    assert _resolve([]) is False
    assert _resolve([GPU]) is True
    assert _resolve([GPU, GPU]) is True
    assert _resolve([], jit_compile="true") is True and _resolve([GPU], jit_compile="false") is False
    assert _resolve([GPU], jit_compile="true", cpu_replicas=2) is True   # --cpu_replicas only splits a CPU


@pytest.mark.parametrize("options,where", [(dict(cpu_replicas=2), "--cpu_replicas=2"),
                                           (dict(strategy="multi_worker"), "--strategy=multi_worker on CPUs")])
def test_xla_on_several_cpu_replicas_is_refused_in_one_line(options, where):
    with pytest.raises(UserError, match=f"^--jit_compile=true cannot compile the step with {where} .*: pass "
                                        f"--jit_compile=false$"):
        _resolve([], jit_compile="true", **options)
    assert _resolve([], **options) is False   # auto


def test_a_bad_value_is_one_line():
    with pytest.raises(UserError, match="^--jit_compile=yes is not a choice: use one of auto, true, false$"):
        TrainConfig(workdir="w", jit_compile="yes")


def _train_step(jit_compile, **options):
    config = TrainConfig(workdir="w", batch_size=8, precision="float32", jit_compile=jit_compile, **options)
    keras.utils.set_random_seed(0)
    train_step = step.TrainStep(config, distribute.make_strategy(config), "float32", CLASS_NAMES, 64)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)                  # [N, 64, 64, 3]
    labels = rng.integers(0, len(CLASS_NAMES), 32).astype(np.int32)                 # [N]
    dataset = input_pipeline.train_dataset(images, labels, config.batch_size, config.seed, balanced=config.balanced)
    return train_step, iter(dataset)


def _functions_compiled_with_xla(train_step, iterator):
    graph = train_step._compiled_steps.get_concrete_function(iterator, tf.constant(1, tf.int64)).graph
    library = graph.as_graph_def().library.function
    return [f.signature.name for f in library if f.attr["_XlaMustCompile"].b]


@pytest.mark.slow   # traces the whole step twice
def test_off_the_step_is_todays_and_on_one_replica_step_is_compiled():
    off, iterator = _train_step("false")
    assert off.jit_compile is False and off._replica_update == off._replica_step   # the same Python calls
    assert isinstance(off.strategy, tf.distribute.MirroredStrategy)
    assert _functions_compiled_with_xla(off, iterator) == []
    on, iterator = _train_step("true")
    assert on.jit_compile is True and on.strategy is tf.distribute.get_strategy()   # the default strategy
    compiled = _functions_compiled_with_xla(on, iterator)
    assert len(compiled) == 1 and "_replica_step" in compiled[0], compiled


def _state(train_step):
    """The run's variables by group, as float64 vectors (the counters and the noise state apart)."""
    groups = {"G": train_step.generator.trainable_variables, "D": train_step.discriminator.trainable_variables,
              "statistics": [v for v in train_step.generator.variables + train_step.discriminator.variables
                             if not v.trainable],
              "optimizers": train_step.g_optimizer.variables + train_step.d_optimizer.variables}
    if train_step.ema:
        groups["EMA"] = train_step.ema.model.variables
    for name in ("lecam", "ada"):
        if getattr(train_step, name):
            groups[name] = list(getattr(train_step, name).variables)
    return {name: np.concatenate([np.asarray(v, np.float64).ravel() for v in variables])
            for name, variables in groups.items() if variables}


QUALITY = dict(d_conditioning="projection", d_norm="spectral", loss="hinge", ema_decay=0.9, ema_start=1,
               augment="translation,cutout", mode_seeking=0.25, balanced=True)
# The limited-data options' state under XLA (LeCam's anchors, ADA's accumulators, the class-signal ramp) on
# the DCGAN networks; compiling the residual ones doubles the test, and test_robustness resumes them.
SMALL_DATA = dict(d_conditioning="projection", d_norm="spectral",
                  loss="hinge", lecam=0.1, ada_target=0.6, ada_interval=1, ada_speed_images=16, transition_start=1,
                  transition_end=3, ema_decay=0.9, augment="color,translation,cutout")


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, QUALITY, SMALL_DATA], ids=["baseline", "quality", "small-data"])
def test_compiled_and_uncompiled_runs_agree_to_rounding(options):
    # XLA fuses and reorders float32 arithmetic, so the two runs differ by rounding, and a GAN amplifies
    # that from step to step (Adam's first steps move a weight by ±lr whatever the size of its
    # gradient, so a gradient near 0 can flip sign). Stated tolerances, over 3 steps:
    # - the first step's losses and D outputs within 1e-3, the third's within 1e-2; ada_rt, a mean of
    #   the signs of D's logits on the batch, within one image's flip (2 / batch), since a logit near 0
    #   may take either sign;
    # - for every group of variables, the distance between the runs at most a quarter of the distance
    #   the uncompiled run travelled from the start (a missing, doubled or different update would be
    #   as far apart as the update itself);
    # - the step counter and the noise generator's state exactly equal: the same numbers were drawn.
    (off, off_data), (on, on_data) = _train_step("false", **options), _train_step("true", **options)
    start = _state(off)
    assert start.keys() == _state(on).keys()
    for number in range(3):
        off_metrics, on_metrics = off.run_steps(off_data, 1), on.run_steps(on_data, 1)
        assert off_metrics.keys() == on_metrics.keys()
        for name in off_metrics:
            tolerance = 2 / off.config.batch_size if name == "ada_rt" else 1e-3 if number == 0 else 1e-2
            assert on_metrics[name] == pytest.approx(off_metrics[name], abs=tolerance), (number, name)
    off_state, on_state = _state(off), _state(on)
    for group in start:
        travelled = np.linalg.norm(off_state[group] - start[group])
        apart = np.linalg.norm(on_state[group] - off_state[group])
        assert apart <= 0.25 * travelled or apart < 1e-6, (group, apart, travelled)
    assert int(on.step.numpy()) == int(off.step.numpy()) == 3
    np.testing.assert_array_equal(on.noise.state.numpy(), off.noise.state.numpy())


def _train(workdir, isic_data_dir, train_steps):
    args = [sys.executable, "trainer.py", f"--workdir={workdir}", "--dataset=isic_skin_cancer/real_64",
            f"--data_dir={isic_data_dir}", "--batch_size=4", "--precision=float32", f"--train_steps={train_steps}",
            "--checkpoint_every=2", "--summary_every=2", "--image_every=1000", "--steps_per_call=2",
            "--deterministic", "--jit_compile=true", "--augment=color,translation,cutout", "--ema_decay=0.9",
            "--mode_seeking=1", "--d_norm=spectral", "--loss=hinge"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_a_compiled_run_resumes_bitwise(tmp_path, isic_data_dir):
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    _train(straight, isic_data_dir, 4)
    interrupted_copy(straight, split, 2)
    assert "Restored step 2" in _train(split, isic_data_dir, 4).stderr
    a, b = checkpoint_tensors(straight), checkpoint_tensors(split)
    assert a.keys() == b.keys() and len(a) > 80
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert json.load(open(os.path.join(split, "config.json")))["resolved_jit_compile"] is True
