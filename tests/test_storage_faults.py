"""Storage faults injected into real writes: a failed checkpoint or export never costs an earlier one.

In-process faults: the kernel's own file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored fails a write
past the limit with EFBIG, through TensorFlow's and Keras' own writers), and TensorFlow errors raised
where its writer raises them. The tests marked slow run trainer.py and sample.py as a user does.
"""

import contextlib
import errno
import os
import resource
import signal
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.lib.io import file_io

from cgan.core import files

from cgan.model import model_files

from cgan.run import checkpoints
from cgan.core.errors import UserError
from conftest import REPO, tree

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@contextlib.contextmanager
def file_size_limit(limit):
    """Writes past `limit` bytes of a file fail with EFBIG, as a full disk fails them with ENOSPC."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


class Run:
    """A run's checkpointed state (a step and 128×128 weights, a 64 KiB data file) and its store."""

    def __init__(self, directory):
        self.step = tf.Variable(0, dtype=tf.int64)
        self.weights = tf.Variable(tf.zeros([128, 128]))
        self.checkpoint = tf.train.Checkpoint(step=self.step, weights=self.weights)
        self.store = checkpoints.CheckpointStore(self.checkpoint, str(directory), max_to_keep=3)

    def save(self, step):
        self.step.assign(step)
        self.weights.assign(tf.fill([128, 128], float(step)))
        return self.store.save(step)


def restored_step(directory):
    run = Run(directory)
    step = run.store.restore()
    assert float(run.weights[0, 0]) == step
    return step


def test_a_write_past_the_file_size_limit_fails_the_save_cleanly(tmp_path):
    run = Run(tmp_path)
    run.save(2)
    run.save(4)
    before = tree(tmp_path)
    with file_size_limit(16 << 10):
        with pytest.raises(files.StorageError) as caught:
            run.save(6)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write {tmp_path / 'ckpt-6'} (File too large): a file-size limit")
    assert message.endswith("then rerun the same command: it resumes from step 4")
    assert isinstance(caught.value.__cause__, tf.errors.OpError)      # TensorFlow's own writer failed
    assert tree(tmp_path) == before                                    # no ckpt-6_temp/, no ckpt-6.*
    assert restored_step(tmp_path) == 4
    run.save(6)                                                        # space again: the run goes on
    assert restored_step(tmp_path) == 6


def test_a_full_disk_in_the_checkpoint_writer_leaves_no_temporary(tmp_path, monkeypatch):
    run = Run(tmp_path)
    run.save(2)
    before = tree(tmp_path)
    real_save = tf.train.CheckpointManager.save

    def full_disk(manager, checkpoint_number=None, **kwargs):
        # What SaveV2 leaves on a full disk: a shard folder with a partial tempstate file.
        shard = tmp_path / f"ckpt-{checkpoint_number}_temp"
        shard.mkdir()
        (shard / "part-00000-of-00001.data-00000-of-00001.tempstate123").write_bytes(b"\0" * 1000)
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{{{{function_node __wrapped__SaveV2}}}} {shard}/part-00000-of-00001.data-00000-of-00001"
                        f".tempstate123; No space left on device [Op:SaveV2]")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    with pytest.raises(files.StorageError) as caught:
        run.save(4)
    message = str(caught.value)
    assert message.startswith(f"cannot write {tmp_path / 'ckpt-4'} (No space left on device): free space on ")
    assert "MiB free; a checkpoint needs about" in message
    assert message.endswith("it resumes from step 2")
    assert tree(tmp_path) == before
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    assert restored_step(tmp_path) == 2


@pytest.mark.parametrize("error, fix", [
    (tf.errors.ResourceExhaustedError(None, None, "checkpoint.tmpX; No space left on device"), "free space on"),
    (tf.errors.PermissionDeniedError(None, None, "checkpoint.tmpX; Permission denied"), "writable by this user"),
    (tf.errors.UnavailableError(None, None, "checkpoint.tmpX; Input/output error"), "dmesg")])
def test_a_failed_state_file_update_removes_the_unlisted_checkpoint(tmp_path, monkeypatch, error, fix):
    run = Run(tmp_path)
    run.save(2)
    before = tree(tmp_path)

    def fails(filename, contents, overwrite=True):
        open(f"{filename}.tmp{'ab' * 16}", "w").write(contents[:10])   # TensorFlow's temporary, cut short
        raise error

    monkeypatch.setattr(file_io, "atomic_write_string_to_file", fails)
    with pytest.raises(files.StorageError, match=fix) as caught:
        run.save(4)
    assert str(caught.value).endswith("it resumes from step 2")
    assert tree(tmp_path) == before                     # the whole but unlisted ckpt-4.* went too
    monkeypatch.undo()
    assert restored_step(tmp_path) == 2
    run.save(4)                                         # the store rereads the state file after a failure
    assert restored_step(tmp_path) == 4


def test_a_failed_first_save_says_the_run_starts_again_from_step_0(tmp_path):
    run = Run(tmp_path / "checkpoints")
    with file_size_limit(16 << 10):
        with pytest.raises(files.StorageError, match="it starts again from step 0$"):
            run.save(2)
    assert os.listdir(tmp_path / "checkpoints") == []


def test_an_os_error_from_the_checkpoint_write_is_a_storage_error(tmp_path, monkeypatch):
    run = Run(tmp_path)
    run.save(2)

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", broken)
    with pytest.raises(files.StorageError, match=r"\(Input/output error\): check the device"):
        run.save(4)


# Exports.

def tiny_model(seed, width=16):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((width,)), keras.layers.Dense(width)])


def export_step(workdir, step, width=16):
    info = {"class_names": ["a", "b"], "latent_dim": width, "resolution": 64, "step": step}
    model_files.save_models(str(workdir), tiny_model(step, width), tiny_model(step + 100, width), info)


def assert_export_is(workdir, step):
    generator, info = model_files.load_generator(str(workdir / model_files.GENERATOR_FILE))
    assert info["step"] == step
    expected = tiny_model(step, generator.input_shape[1]).get_weights()[0]
    np.testing.assert_array_equal(generator.get_weights()[0], expected)
    assert sorted(os.listdir(workdir)) == ["discriminator.keras", "generator.json", "generator.keras"]


def test_an_export_failing_mid_write_keeps_the_previous_export(tmp_path, monkeypatch):
    export_step(tmp_path, 2)
    before = tree(tmp_path)

    def half_save(model, path, *args, **kwargs):
        open(path, "wb").write(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", half_save)
    with pytest.raises(files.StorageError, match=r"discriminator.keras \(No space left on device\)"):
        export_step(tmp_path, 4)
    monkeypatch.undo()
    assert tree(tmp_path) == before
    assert_export_is(tmp_path, 2)


def test_an_export_that_reads_back_damaged_is_not_installed(tmp_path, monkeypatch):
    export_step(tmp_path, 2)
    before = tree(tmp_path)
    real_save = keras.Model.save

    def save_then_lose_the_end(model, path, *args, **kwargs):   # a write that went wrong without an error
        real_save(model, path, *args, **kwargs)
        truncate_to = os.path.getsize(path) - 50
        with open(path, "r+b") as f:
            f.truncate(truncate_to)

    monkeypatch.setattr(keras.Model, "save", save_then_lose_the_end)
    with pytest.raises(files.StorageError, match="reads back damaged: not a .keras archive") as caught:
        export_step(tmp_path, 4)
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    assert tree(tmp_path) == before
    assert_export_is(tmp_path, 2)


def test_an_export_past_the_file_size_limit_keeps_the_previous_export(tmp_path):
    export_step(tmp_path, 2, width=128)
    before = tree(tmp_path)
    with file_size_limit(32 << 10):
        with pytest.raises(files.StorageError, match=r"\(File too large\)"):
            export_step(tmp_path, 4, width=128)
    assert tree(tmp_path) == before
    assert_export_is(tmp_path, 2)


def damage(path, kind):
    data = open(path, "rb").read()
    if kind == "truncated":
        data = data[:len(data) // 2]
    elif kind == "garbage":
        data = b"these are not the bytes of a model" * 10
    elif kind == "empty":
        data = b""
    elif kind == "flipped byte":   # inside the weights member, which its CRC-32 covers
        with zipfile.ZipFile(path) as archive:
            member = archive.getinfo("model.weights.h5")
        data = bytearray(data)
        data[member.header_offset + 100] ^= 0xFF
        data = bytes(data)
    open(path, "wb").write(data)


@pytest.mark.parametrize("kind, says", [("truncated", "not a .keras archive"), ("garbage", "not a .keras archive"),
                                        ("empty", "empty file"), ("flipped byte", "fails its CRC check")])
def test_a_damaged_model_is_named_and_the_fix_given(tmp_path, kind, says):
    export_step(tmp_path, 2)
    path = str(tmp_path / model_files.GENERATOR_FILE)
    damage(path, kind)
    with pytest.raises(UserError) as caught:
        model_files.load_generator(path)
    message = str(caught.value)
    assert message.startswith(f"cannot load {path}: the file is damaged (") and says in message
    assert "File not found" not in message and "\n" not in message
    assert "rerunning trainer.py" in message


# End to end (the trainer's loop uses cgan.run.checkpoints once it is wired to it).

def trainer(workdir, data_dir, train_steps, limit=None):
    flags = {"workdir": workdir, "dataset": "isic_skin_cancer/real_64", "data_dir": data_dir, "batch_size": 4,
             "precision": "float32", "train_steps": train_steps, "checkpoint_every": 2, "summary_every": 2,
             "image_every": 1000, "steps_per_call": 2}

    def lower_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # stays ignored across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    args = [sys.executable, os.path.join(REPO, "trainer.py")] + [f"--{k}={v}" for k, v in flags.items()]
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300,
                          preexec_fn=lower_limit if limit else None)


def latest_step(workdir):
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return checkpoints.step_of(latest) if latest else None


@pytest.mark.slow
def test_trainer_resumes_past_damaged_checkpoints(tmp_path, isic_data_dir):
    workdir = str(tmp_path / "work")
    assert trainer(workdir, isic_data_dir, 6).returncode == 0
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    with open(os.path.join(checkpoint_dir, "ckpt-6.data-00000-of-00001"), "r+b") as f:
        f.truncate(1000)                                     # a crash cut the newest data file short
    open(os.path.join(checkpoint_dir, "ckpt-4.index"), "wb").write(b"garbage")   # and the next one's index

    rerun = trainer(workdir, isic_data_dir, 8)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Traceback" not in rerun.stderr
    assert "Restored step 2 " in rerun.stderr
    skipped = [line for line in rerun.stderr.splitlines() if "Skipped checkpoint" in line]
    assert len(skipped) == 2 and "ckpt-6" in skipped[0] and "ckpt-4" in skipped[1]
    assert sorted(os.listdir(os.path.join(checkpoint_dir, "damaged"))) == [
        "ckpt-4.data-00000-of-00001", "ckpt-4.index", "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    assert latest_step(workdir) == 8


@pytest.mark.slow
def test_trainer_on_a_full_filesystem_stops_with_one_line_and_resumes(tmp_path, isic_data_dir):
    workdir = str(tmp_path / "work")
    assert trainer(workdir, isic_data_dir, 2).returncode == 0
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    before = sorted(os.listdir(checkpoint_dir))

    full = trainer(workdir, isic_data_dir, 4, limit=1 << 20)   # every file stops at 1 MiB, as on a full disk

    assert full.returncode == 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    error = [line for line in full.stderr.splitlines() if line.startswith("trainer.py: error: ")]
    assert len(error) == 1 and "ckpt-4" in error[0] and "File too large" in error[0]
    assert error[0].endswith("it resumes from step 2")
    assert sorted(os.listdir(checkpoint_dir)) == before       # no ckpt-4_temp/, no checkpoint.tmp*
    again = trainer(workdir, isic_data_dir, 4)
    assert again.returncode == 0 and "Restored step 2 " in again.stderr
    assert latest_step(workdir) == 4


@pytest.mark.slow
def test_sampler_names_a_damaged_model(tmp_path):
    export_step(tmp_path, 2)
    path = str(tmp_path / model_files.GENERATOR_FILE)
    damage(path, "truncated")
    result = subprocess.run([sys.executable, os.path.join(REPO, "sample.py"), f"--model={path}", "--label=0",
                             f"--out_dir={tmp_path / 'out'}"], capture_output=True, text=True, cwd=REPO, env=ENV,
                            timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"sample.py: error: cannot load {path}: the file is damaged (not a .keras archive" in result.stderr
    assert not os.path.exists(tmp_path / "out")
