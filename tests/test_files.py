"""Atomic writes and the clean-up of what killed writers leave behind."""

import os
import subprocess

import pytest

from cgan import files


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
