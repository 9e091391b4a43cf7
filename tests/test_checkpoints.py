"""The checkpoint store: restore falls back past damaged checkpoints, moves them aside, never deletes them."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from cgan.run import checkpoints
from cgan.core.errors import UserError
from conftest import tree


class RunState:
    """A small stand-in for a run's checkpointed state: a step and weights filled with the step's value."""

    def __init__(self, size=64):
        self.step = tf.Variable(0, dtype=tf.int64)
        self.weights = tf.Variable(tf.zeros([size, size]))
        self.bias = tf.Variable(tf.zeros([size]))
        self.checkpoint = tf.train.Checkpoint(step=self.step, weights=self.weights, bias=self.bias)

    def set(self, step):
        self.step.assign(step)
        self.weights.assign(tf.fill(self.weights.shape, float(step)))
        self.bias.assign(tf.fill(self.bias.shape, -float(step)))

    def assert_at(self, step):
        assert int(self.step.numpy()) == step
        np.testing.assert_array_equal(self.weights.numpy(), np.full(self.weights.shape, float(step)))
        np.testing.assert_array_equal(self.bias.numpy(), np.full(self.bias.shape, -float(step)))


def save_steps(directory, steps, max_to_keep=3):
    state = RunState()
    store = checkpoints.CheckpointStore(state.checkpoint, str(directory), max_to_keep)
    for step in steps:
        state.set(step)
        store.save(step)
    return state


def restore(directory, **kwargs):
    state = RunState()
    store = checkpoints.CheckpointStore(state.checkpoint, str(directory), 3, **kwargs)
    return store.restore(), state, store


def listed_steps(directory):
    """The steps a fresh tf.train.CheckpointManager sees in directory's state file, oldest first."""
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(), str(directory), max_to_keep=3)
    return [checkpoints.step_of(prefix) for prefix in manager.checkpoints]


def truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def data_file(directory, step):
    return os.path.join(directory, f"ckpt-{step}.data-00000-of-00001")


@pytest.fixture
def warnings(caplog):
    caplog.set_level(logging.WARNING)
    return caplog


def test_save_then_restore_the_newest_step(tmp_path):
    save_steps(tmp_path, [2, 4, 6, 8])
    step, state, _ = restore(tmp_path)
    assert step == 8
    state.assert_at(8)
    assert listed_steps(tmp_path) == [4, 6, 8]                  # max_to_keep=3 pruned step 2
    assert not os.path.exists(tmp_path / "ckpt-2.index")


def test_no_checkpoint_restores_nothing(tmp_path):
    assert restore(tmp_path / "missing")[0] is None
    assert restore(tmp_path)[0] is None
    state = RunState()
    state.set(0)
    store = checkpoints.CheckpointStore(state.checkpoint, str(tmp_path / "new"), 3)
    assert store.restore() is None
    store.save(2)                                           # the store then saves into a fresh directory
    assert listed_steps(tmp_path / "new") == [2]


@pytest.mark.parametrize("damage", ["truncated data", "garbage index", "flipped byte", "empty index",
                                    "missing data"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, warnings, damage):
    save_steps(tmp_path, [2, 4, 6])
    if damage == "truncated data":
        truncate(data_file(tmp_path, 6))
    elif damage == "garbage index":
        (tmp_path / "ckpt-6.index").write_bytes(b"garbage!")
    elif damage == "flipped byte":
        data = bytearray(open(data_file(tmp_path, 6), "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(data_file(tmp_path, 6), "wb").write(bytes(data))
    elif damage == "empty index":
        (tmp_path / "ckpt-6.index").write_bytes(b"")
    else:
        os.remove(data_file(tmp_path, 6))
    damaged_files = {name: data for name, data in tree(tmp_path).items() if name.startswith("ckpt-6.")}

    step, state, _ = restore(tmp_path)

    assert step == 4
    state.assert_at(4)
    assert listed_steps(tmp_path) == [2, 4]
    # Moved aside whole, not deleted, and never chosen again.
    assert tree(tmp_path / "damaged") == damaged_files
    assert not any(name.startswith("ckpt-6") for name in os.listdir(tmp_path))
    skipped = [r.getMessage() for r in warnings.records if "Skipped checkpoint" in r.getMessage()]
    assert len(skipped) == 1 and str(tmp_path / "ckpt-6") in skipped[0] and "damaged" in skipped[0]
    assert "\n" not in skipped[0]
    assert restore(tmp_path)[0] == 4


def test_the_truncated_data_warning_says_why(tmp_path, warnings):
    save_steps(tmp_path, [2, 4])
    truncate(data_file(tmp_path, 4))
    assert restore(tmp_path)[0] == 2
    assert "Read less bytes than requested" in warnings.text


def test_two_damaged_checkpoints_fall_back_two_steps(tmp_path):
    save_steps(tmp_path, [2, 4, 6])
    truncate(data_file(tmp_path, 6))
    (tmp_path / "ckpt-4.index").write_bytes(b"junk")
    step, state, _ = restore(tmp_path)
    assert step == 2
    state.assert_at(2)
    assert sorted(os.listdir(tmp_path / "damaged")) == sorted(
        ["ckpt-4.index", "ckpt-4.data-00000-of-00001", "ckpt-6.index", "ckpt-6.data-00000-of-00001"])


def test_a_damaged_state_file_loses_no_checkpoint(tmp_path, warnings):
    save_steps(tmp_path, [2, 4, 6])
    (tmp_path / "checkpoint").write_bytes(b"\xff\xfe\x00 not a state file")
    step, state, _ = restore(tmp_path)
    assert step == 6
    state.assert_at(6)
    assert listed_steps(tmp_path) == [2, 4, 6]               # rewritten, readable by TensorFlow again
    assert (tmp_path / "damaged" / "checkpoint").read_bytes() == b"\xff\xfe\x00 not a state file"
    assert "state file" in warnings.text and "damaged" in warnings.text


def test_a_cut_short_state_file_and_a_damaged_newest_checkpoint(tmp_path):
    save_steps(tmp_path, [2, 4, 6])
    text = (tmp_path / "checkpoint").read_text()
    (tmp_path / "checkpoint").write_text(text[:len(text) // 2])
    truncate(data_file(tmp_path, 6))
    assert restore(tmp_path)[0] == 4
    assert listed_steps(tmp_path) == [2, 4]


def test_a_damaged_state_file_without_checkpoints_is_set_aside(tmp_path):
    (tmp_path / "checkpoint").write_bytes(b"\xff garbage")
    state = RunState()
    store = checkpoints.CheckpointStore(state.checkpoint, str(tmp_path), 3)
    assert store.restore() is None
    assert os.path.exists(tmp_path / "damaged" / "checkpoint")
    store.save(2)                                            # the manager can read the directory again
    assert listed_steps(tmp_path) == [2]


def test_a_whole_checkpoint_missing_from_the_state_file_is_found(tmp_path):
    save_steps(tmp_path, [2, 4])
    state_text = (tmp_path / "checkpoint").read_bytes()
    save_steps(tmp_path, [6])                               # as if the state file's update had failed
    (tmp_path / "checkpoint").write_bytes(state_text)
    step, state, _ = restore(tmp_path)
    assert step == 6
    state.assert_at(6)
    assert listed_steps(tmp_path) == [2, 4, 6]


def test_a_listed_checkpoint_whose_files_are_gone_is_dropped(tmp_path, warnings):
    save_steps(tmp_path, [2, 4, 6])
    for name in ("ckpt-6.index", "ckpt-6.data-00000-of-00001"):
        os.remove(tmp_path / name)
    assert restore(tmp_path)[0] == 4
    assert listed_steps(tmp_path) == [2, 4]
    assert "its files are missing" in warnings.text
    assert not os.path.exists(tmp_path / "damaged")


def test_a_worker_skips_damage_without_touching_the_chiefs_files(tmp_path, warnings):
    save_steps(tmp_path, [2, 4, 6])
    truncate(data_file(tmp_path, 6))
    before = tree(tmp_path)
    step, state, _ = restore(tmp_path, save_dir=str(tmp_path / "worker1"), may_modify=False)
    assert step == 4
    state.assert_at(4)
    assert tree(tmp_path) == before
    assert "left in place" in warnings.text


def test_no_readable_checkpoint_is_one_error_naming_them_and_nothing_moves(tmp_path):
    save_steps(tmp_path, [2, 4])
    truncate(data_file(tmp_path, 4))
    (tmp_path / "ckpt-2.index").write_bytes(b"garbage")
    before = tree(tmp_path)
    with pytest.raises(UserError) as error:
        restore(tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert "ckpt-4 (" in message and "ckpt-2 (" in message and str(tmp_path) in message
    assert "nothing was moved or deleted" in message and "--workdir" in message
    assert tree(tmp_path) == before


def test_a_checkpoint_of_another_model_is_an_error_not_damage(tmp_path):
    save_steps(tmp_path, [2, 4])
    before = tree(tmp_path)
    wider = RunState(size=32)                               # the same names, other shapes
    with pytest.raises(UserError, match="does not fit this model") as error:
        checkpoints.CheckpointStore(wider.checkpoint, str(tmp_path), 3).restore()
    assert "ckpt-4" in str(error.value) and "\n" not in str(error.value)
    other = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), generator=tf.Variable(1.0))
    with pytest.raises(UserError, match="does not fit this model"):
        checkpoints.CheckpointStore(other, str(tmp_path), 3).restore()
    assert tree(tmp_path) == before


def test_saving_after_a_fallback_continues_and_prunes(tmp_path):
    save_steps(tmp_path, [2, 4, 6])
    truncate(data_file(tmp_path, 6))
    step, state, store = restore(tmp_path)
    for next_step in (6, 8, 10):
        state.set(next_step)
        store.save(next_step)
    assert listed_steps(tmp_path) == [6, 8, 10]
    assert restore(tmp_path)[0] == 10
    assert "ckpt-6.data-00000-of-00001" in os.listdir(tmp_path / "damaged")   # the damaged copy is kept


def test_damage_at_the_same_step_twice_keeps_both_copies(tmp_path):
    for _ in range(2):
        save_steps(tmp_path, [2, 4, 6])
        truncate(data_file(tmp_path, 6))
        assert restore(tmp_path)[0] == 4
    assert sorted(os.listdir(tmp_path / "damaged")) == [
        "ckpt-6.data-00000-of-00001", "ckpt-6.index", "ckpt-6_2.data-00000-of-00001", "ckpt-6_2.index"]


def test_a_second_save_at_the_restored_step_writes_nothing(tmp_path):
    save_steps(tmp_path, [2, 4])
    before = tree(tmp_path)
    step, state, store = restore(tmp_path)
    assert store.save(step) == str(tmp_path / "ckpt-4")
    assert tree(tmp_path) == before


def test_relative_directories_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_steps("run/checkpoints", [2, 4])
    truncate(data_file("run/checkpoints", 4))
    assert restore("run/checkpoints")[0] == 2
    assert listed_steps("run/checkpoints") == [2]
