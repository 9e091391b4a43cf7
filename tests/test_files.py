"""Atomic writes, storage faults as one-line errors, and the clean-up of what killed writers leave behind."""

import errno
import os
import shutil
import subprocess

import pytest
import tensorflow as tf

from cgan.core import files
from cgan.core.errors import UserError


def exited_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_atomic_write_bytes_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "info.json"
    files.atomic_write_bytes(str(path), b"first")
    files.atomic_write_bytes(str(path), b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(path.parent) == ["info.json"]


def test_an_unsynced_write_is_still_atomic_and_only_skips_the_flush(tmp_path, monkeypatch):
    path = tmp_path / "class03_melanoma_seed0005.png"
    path.write_bytes(b"old")

    def no_flush(fd):
        raise AssertionError("flushed")

    monkeypatch.setattr(files.os, "fsync", no_flush)
    files.atomic_write_bytes(str(path), b"new", sync=False)
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == [path.name]
    with pytest.raises(AssertionError, match="flushed"):
        files.atomic_write_bytes(str(path), b"newer")               # the default flushes
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == [path.name]


def test_atomic_write_json_is_indented_text_ending_in_a_newline(tmp_path):
    path = tmp_path / "report.json"
    files.atomic_write_json(str(path), {"b": 1, "a": [1, None]})
    assert path.read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    null\n  ]\n}\n'
    files.atomic_write_json(str(path), {"b": 1, "a": 2}, sort_keys=True)
    assert path.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


def test_a_failed_save_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "generator.keras"
    path.write_bytes(b"old model")

    def half_save(tmp):
        assert os.path.basename(tmp) == f".tmp{os.getpid()}_generator.keras"  # the suffix survives
        open(tmp, "wb").write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.atomic_save(half_save, str(path))
    assert path.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["generator.keras"]


def test_remove_stale_temporaries_removes_only_what_dead_writers_left(tmp_path):
    dead = exited_pid()
    live = subprocess.Popen(["sleep", "60"])
    try:
        checkpoints = tmp_path / "checkpoints"
        (tmp_path / "samples").mkdir()
        checkpoints.mkdir()
        stale = [tmp_path / f".tmp{dead}_generator.keras", tmp_path / "samples" / f".tmp{dead}_step_000004.png",
                 checkpoints / ("checkpoint.tmp" + "ab" * 16), checkpoints / "ckpt-6_temp" / "part-00000-of-00001"]
        kept = [tmp_path / f".tmp{live.pid}_generator.json",   # its writer is still running
                tmp_path / f".tmp{os.getpid()}_generator.json",  # ours
                tmp_path / "generator.keras", checkpoints / "checkpoint", checkpoints / "ckpt-4.index",
                tmp_path / "notes.tmp"]
        for path in stale + kept:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        # TensorFlow's temporaries are recognised only in the checkpoint directory named.
        foreign = tmp_path / ("checkpoint.tmp" + "ab" * 16)
        foreign.write_bytes(b"x")

        removed = files.remove_stale_temporaries(str(tmp_path), str(checkpoints))

        expected = sorted(str(p) for p in stale[:3]) + [str(checkpoints / "ckpt-6_temp")]
        assert removed == sorted(expected)
        assert not any(p.exists() for p in stale)
        assert all(p.exists() for p in kept) and foreign.exists()
        assert not (checkpoints / "ckpt-6_temp").exists()
    finally:
        live.kill()
        live.wait()


def test_remove_stale_temporaries_without_a_checkpoint_directory(tmp_path):
    (tmp_path / ("checkpoint.tmp" + "ab" * 16)).write_bytes(b"x")
    assert files.remove_stale_temporaries(str(tmp_path)) == []
    assert files.remove_stale_temporaries(str(tmp_path / "missing"), str(tmp_path / "missing")) == []


STORAGE_FAULTS = [(errno.ENOSPC, "free space on"), (errno.EDQUOT, "free space on"), (errno.EFBIG, "ulimit -f"),
                  (errno.EACCES, "writable by this user"), (errno.EPERM, "writable by this user"),
                  (errno.EROFS, "read-only"), (errno.EIO, "dmesg")]


@pytest.mark.parametrize("number, fix", STORAGE_FAULTS)
def test_a_storage_fault_becomes_one_line_naming_the_path_the_cause_and_the_fix(tmp_path, number, fix):
    path = str(tmp_path / "samples" / "step_000004.png")
    with pytest.raises(files.StorageError) as caught:
        with files.writing(path):
            raise OSError(number, os.strerror(number))
    error = caught.value
    assert isinstance(error, UserError) and isinstance(error, OSError)  # `except OSError` still catches it
    assert error.errno == number and error.filename == path
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"cannot write {path} ({os.strerror(number)})")
    assert fix in message and "then rerun the same command" in message
    if number in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        mount, _ = files.filesystem(path)
        assert f"free space on {mount} (" in message and " MiB free)" in message


def test_the_free_space_and_what_is_needed_are_stated(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: usage._replace(free=3 * (1 << 20)))
    error = files.storage_error(str(tmp_path / "ckpt-6"), OSError(errno.ENOSPC, "No space left on device"),
                                needed_bytes=40 << 20, what="a checkpoint", then="rerun: it resumes from step 4")
    assert f"free space on {files.filesystem(str(tmp_path))[0]} (3.0 MiB free; a checkpoint needs about 40 MiB)" \
        in str(error)
    assert str(error).endswith("then rerun: it resumes from step 4")


def test_the_free_space_stated_is_what_is_left_once_the_temporary_is_gone(tmp_path, monkeypatch):
    seen = []
    real_disk_usage = shutil.disk_usage

    def disk_usage(path):
        seen.append(sorted(os.listdir(tmp_path)))
        return real_disk_usage(path)

    def fills_the_disk(tmp):
        open(tmp, "wb").write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.shutil, "disk_usage", disk_usage)
    with pytest.raises(files.StorageError):
        files.atomic_save(fills_the_disk, str(tmp_path / "generator.keras"))
    assert seen == [[]]


def test_tensorflow_storage_errors_are_translated_with_their_system_text(tmp_path):
    message = ("{{function_node __wrapped__SaveV2_dtypes_21_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
               "/w/ckpt-4_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space left on device "
               "[Op:SaveV2]")
    with pytest.raises(files.StorageError) as caught:
        with files.writing(str(tmp_path / "ckpt-4")):
            raise tf.errors.ResourceExhaustedError(None, None, message)
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value).startswith(f"cannot write {tmp_path / 'ckpt-4'} (No space left on device): "
                                        f"free space on ")
    with pytest.raises(files.StorageError, match=r"\(File too large\): a file-size limit"):
        with files.writing(str(tmp_path / "x")):
            raise tf.errors.OutOfRangeError(None, None, "/w/x.tempstate2; File too large [Op:SaveV2]")


@pytest.mark.parametrize("error", [OSError(errno.ENOENT, "No such file or directory"), OSError("disk full"),
                                   ValueError("a bug"),
                                   tf.errors.InvalidArgumentError(None, None, "shapes differ")])
def test_other_errors_pass_through_unchanged(tmp_path, error):
    with pytest.raises(type(error)) as caught:
        with files.writing(str(tmp_path / "x")):
            raise error
    assert caught.value is error


def test_a_storage_error_raised_inside_is_not_wrapped_again(tmp_path):
    inner = files.storage_error(str(tmp_path / "a"), OSError(errno.EIO, "Input/output error"))
    with pytest.raises(files.StorageError) as caught:
        with files.writing(str(tmp_path / "b")):
            raise inner
    assert caught.value is inner


def test_filesystem_of_a_path_not_yet_created(tmp_path):
    mount, free = files.filesystem(str(tmp_path / "a" / "b" / "c.png"))
    assert os.path.ismount(mount) and str(tmp_path).startswith(mount) and free > 0


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_atomic_write_keeps_the_old_file_leaves_no_temporary_and_says_why(tmp_path, monkeypatch,
                                                                                 failing):
    path = tmp_path / "config.json"
    path.write_bytes(b"old")

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    if failing == "write":
        monkeypatch.setattr(files, "open", lambda *a, **k: FailingFile(*a, **k), raising=False)
    else:
        monkeypatch.setattr(files.os, failing, fail)
    with pytest.raises(files.StorageError, match="No space left on device"):
        files.atomic_write_bytes(str(path), b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["config.json"]


class FailingFile:
    """A file whose writes fail as on a full disk, after the first byte reached it."""

    def __init__(self, path, mode):
        self.file = open(path, mode)

    def write(self, data):
        self.file.write(data[:1])
        self.file.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_atomic_save_all_changes_all_files_or_none(tmp_path):
    first, second = tmp_path / "generator.keras", tmp_path / "generator.json"
    first.write_bytes(b"old model")
    second.write_bytes(b"old info")

    def fails(tmp):
        open(tmp, "wb").write(b"half")
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(files.StorageError, match=f"cannot write {second}"):
        files.atomic_save_all([(files.bytes_saver(b"new model"), str(first)), (fails, str(second))])
    assert first.read_bytes() == b"old model" and second.read_bytes() == b"old info"
    assert sorted(os.listdir(tmp_path)) == ["generator.json", "generator.keras"]

    def rejects(tmp):
        assert open(tmp, "rb").read() == b"new model"
        raise OSError(errno.EIO, "the written file reads back damaged")

    with pytest.raises(files.StorageError, match="reads back damaged"):
        files.atomic_save_all([(files.bytes_saver(b"new model"), str(first), rejects),
                               (files.bytes_saver(b"new info"), str(second))])
    assert first.read_bytes() == b"old model" and second.read_bytes() == b"old info"
    assert sorted(os.listdir(tmp_path)) == ["generator.json", "generator.keras"]

    files.atomic_save_all([(files.bytes_saver(b"new model"), str(first)),
                           (files.bytes_saver(b"new info"), str(second))])
    assert first.read_bytes() == b"new model" and second.read_bytes() == b"new info"
    assert sorted(os.listdir(tmp_path)) == ["generator.json", "generator.keras"]


def test_remove_checkpoint_temporaries_of_one_step(tmp_path):
    for name in ("ckpt-4_temp", "ckpt-6_temp"):
        (tmp_path / name).mkdir()
    (tmp_path / ("checkpoint.tmp" + "0a" * 16)).write_bytes(b"x")
    (tmp_path / "ckpt-4.index").write_bytes(b"x")
    removed = files.remove_checkpoint_temporaries(str(tmp_path), step=6)
    assert removed == sorted([str(tmp_path / ("checkpoint.tmp" + "0a" * 16)), str(tmp_path / "ckpt-6_temp")])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-4.index", "ckpt-4_temp"]
    assert files.remove_checkpoint_temporaries(str(tmp_path / "missing")) == []
