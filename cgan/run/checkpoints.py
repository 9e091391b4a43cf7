"""The run's checkpoints: restore the newest one that reads back whole, save without leaving debris.

    store = checkpoints.CheckpointStore(checkpoint, "runs/demo/checkpoints", max_to_keep=3)
    restored = store.restore()   # the step restored (int), or None when there is no checkpoint
    store.save(step)             # StorageError (a UserError) when the storage fails the write

Checkpoints are `<directory>/ckpt-<step>.index` and `.data-*`, written and pruned by
tf.train.CheckpointManager with its state file `<directory>/checkpoint`. TensorFlow writes to
temporaries and renames them, so a kill never leaves half a checkpoint under its final name; a machine
crash or a full disk still can (a truncated `.data-*`, a garbage `.index`, a damaged state file). So
`restore` trusts no file:
- Candidates are the state file's checkpoints and every `ckpt-N.index` on disk with its data beside
  it (a damaged state file loses none), newest first. Each is read back whole (every tensor, which
  checks TensorFlow's per-tensor CRCs), then restored with `assert_existing_objects_matched()`.
- One that cannot be read is skipped with a one-line warning; the chief (`may_modify`) moves its files
  into `<directory>/damaged/` (never deletes them) and rewrites the state file to list the good ones.
  A damaged run thus loses at most the steps since its previous good checkpoint.
- One that reads back whole but does not fit the model (other architecture flags) is not damage: a
  UserError says so. When none of the checkpoints can be read, a UserError names them and why. In
  both cases nothing is moved.
`save(step)` numbers the checkpoint by the step. A failed write (full disk, permissions, I/O) removes
what this save half-wrote (`ckpt-N_temp/`, `checkpoint.tmp*`, `ckpt-N.*` not yet in the state file),
leaves every earlier checkpoint, and raises a StorageError saying what to free and from which step the
command resumes. Other workers of a multi-worker run save with their own `save_dir` and
`may_modify=False`, reading the chief's `directory`.
"""

import glob
import math
import os
import re

import tensorflow as tf
from absl import logging

from cgan.core import files
from cgan.core.errors import UserError

STATE_FILE = "checkpoint"   # tf.train.CheckpointManager's name for it
DAMAGED_DIR = "damaged"
_PREFIX = re.compile(r"^ckpt-(\d+)$")
_INDEX = re.compile(r"^(ckpt-\d+)\.index$")


def step_of(prefix):
    """ckpt-400 -> 400 (checkpoints are numbered by step); -1 for a name not of that form."""
    match = _PREFIX.match(os.path.basename(prefix))
    return int(match.group(1)) if match else -1


def checkpoint_files(prefix):
    """The files of one checkpoint: `<prefix>.index` and `<prefix>.data-*`, those that exist."""
    return sorted(glob.glob(glob.escape(prefix) + ".index") + glob.glob(glob.escape(prefix) + ".data-*"))


def _short(error):
    text = " ".join((getattr(error, "message", None) or str(error) or type(error).__name__).split())
    return text if len(text) <= 160 else text[:157] + "..."


def read_state(directory):
    """The state file's checkpoints as {prefix: timestamp}, oldest first, and whether the file is whole.

    A missing state file is whole and lists nothing. A damaged one (garbage, cut short) lists nothing.

    Returns:
        (dict of absolute prefix -> timestamp or None, bool).
    """
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return {}, True
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (ValueError, UnicodeDecodeError, tf.errors.OpError):
        state = None
    if state is None:
        return {}, False
    prefixes = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if state.model_checkpoint_path not in prefixes:
        prefixes.append(state.model_checkpoint_path)
    stamps = list(state.all_model_checkpoint_timestamps)
    # get_checkpoint_state has joined relative names to `directory`, as _candidates joins them.
    return {prefix: (stamps[i] if i < len(stamps) else None) for i, prefix in enumerate(prefixes)}, True


def write_state(directory, prefixes, timestamps):
    """Writes the state file listing `prefixes` (oldest first; the last is the latest), atomically.

    The text is CheckpointManager's own format; the timestamps keep every listed checkpoint in the
    manager's care (it prunes them beyond max_to_keep).
    """
    names = [os.path.basename(p) for p in prefixes]
    stamps = [timestamps.get(p) or os.path.getmtime(p + ".index") for p in prefixes]
    lines = [f'model_checkpoint_path: "{names[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{name}"' for name in names]
    lines += [f"all_model_checkpoint_timestamps: {stamp!r}" for stamp in stamps]
    lines.append(f"last_preserved_timestamp: {math.floor(min(stamps)) - 1.0!r}")
    files.atomic_write_bytes(os.path.join(directory, STATE_FILE), ("\n".join(lines) + "\n").encode())


def read_back(prefix):
    """Raises if the checkpoint at prefix cannot be read back whole: opens it and reads every tensor."""
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)


class CheckpointStore:
    """Restores and saves one run's checkpoints through a tf.train.CheckpointManager.

    Args:
        checkpoint: the tf.train.Checkpoint of everything a resume needs.
        directory: where the run's checkpoints are (read by restore).
        max_to_keep: checkpoints kept; older ones are deleted as new ones are saved.
        save_dir: where save writes, when not `directory` (a non-chief worker's own folder).
        may_modify: whether restore may move damaged checkpoints aside and rewrite the state file
            (the chief: the workdir's only writer).
    """

    def __init__(self, checkpoint, directory, max_to_keep, save_dir=None, may_modify=True):
        self.checkpoint = checkpoint
        self.directory = directory
        self.save_dir = save_dir or directory
        self.max_to_keep = max_to_keep
        self.may_modify = may_modify
        self._manager = None        # made at the first save, from the state file as restore left it
        self._saved_step = None     # the step whose checkpoint this process restored or saved last

    def _candidates(self):
        """(newest-first prefixes, the state file's {prefix: timestamp}, whether the state file is whole)."""
        listed, state_whole = read_state(self.directory)
        on_disk = set()
        if os.path.isdir(self.directory):
            for name in os.listdir(self.directory):
                match = _INDEX.match(name)
                prefix = os.path.join(self.directory, match.group(1)) if match else None
                if prefix and glob.glob(glob.escape(prefix) + ".data-*"):
                    on_disk.add(prefix)
        prefixes = sorted(set(listed) | on_disk, key=step_of, reverse=True)
        return prefixes, listed, state_whole

    def restore(self):
        """Restores the newest checkpoint that reads back whole (see the module docstring).

        Returns:
            The step restored, or None when the directory holds no checkpoint.

        Raises:
            UserError: a checkpoint does not fit the model; or there are checkpoints and none reads
                back whole; or the state file cannot be rewritten (StorageError).
        """
        prefixes, listed, state_whole = self._candidates()
        if not state_whole:
            logging.warning("The checkpoint state file %s is damaged: looking for checkpoints on disk",
                            os.path.join(self.directory, STATE_FILE))
        if not prefixes:
            logging.info("No checkpoint in %s: starting at step 0", self.directory)
            if not state_whole and self.may_modify:
                self._set_aside([os.path.join(self.directory, STATE_FILE)])
            return None
        damaged = []
        for prefix in prefixes:
            reason = self._unreadable(prefix) or self._restore(prefix)
            if reason:
                damaged.append((prefix, reason))
                continue
            self._after_restore(prefix, prefixes, listed, state_whole, damaged)
            logging.info("Restored step %d from %s", step_of(prefix), prefix)
            self._saved_step = step_of(prefix)
            return self._saved_step
        named = "; ".join(f"{os.path.basename(p)} ({reason})" for p, reason in damaged)
        raise UserError(f"no checkpoint in {self.directory} can be read: {named}; nothing was moved or "
                        f"deleted: put back good copies from a backup, or pass a new --workdir (or move "
                        f"{self.directory} away) to start again from step 0")

    @staticmethod
    def _unreadable(prefix):
        """Why the checkpoint at prefix cannot be read back whole, or None."""
        if not os.path.exists(prefix + ".index"):
            return "its files are missing" if not checkpoint_files(prefix) else "its .index file is missing"
        try:
            read_back(prefix)
        except (tf.errors.OpError, IndexError, ValueError, OSError) as e:  # the reader's kinds of damage
            return _short(e)
        return None

    def _restore(self, prefix):
        """Restores prefix into the checkpoint object; returns why it cannot be read, or None when restored.

        An older checkpoint restored after a failed one overwrites every variable again.
        """
        try:
            self.checkpoint.restore(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:  # unmatched objects, or a variable of another shape
            raise UserError(f"{prefix} does not fit this model ({_short(e)}): it was written with other "
                            f"architecture flags; resume with the flags in the run's config.json, or pass "
                            f"a new --workdir") from None
        except (tf.errors.OpError, IndexError) as e:  # damaged after read_back passed (changed meanwhile)
            return _short(e)
        return None

    def _after_restore(self, restored, prefixes, listed, state_whole, damaged):
        """Warns about the damaged checkpoints skipped; the chief moves them aside and rewrites the state."""
        aside = []
        for prefix, reason in damaged:
            found = checkpoint_files(prefix)
            if not found:
                where = "dropped from the state file" if self.may_modify else "skipped"
            elif self.may_modify:
                where = f"moved to {os.path.join(self.directory, DAMAGED_DIR)}/"
            else:
                where = "left in place"
            logging.warning("Skipped checkpoint %s, which cannot be read (%s); %s", prefix, reason, where)
            aside += found
        if not self.may_modify:
            return
        self._set_aside(aside)
        good = [p for p in prefixes[::-1]   # oldest first
                if step_of(p) <= step_of(restored) and os.path.exists(p + ".index")]
        if not state_whole:
            self._set_aside([os.path.join(self.directory, STATE_FILE)])
        if not state_whole or good != list(listed):
            with files.writing(os.path.join(self.directory, STATE_FILE)):
                write_state(self.directory, good, listed)
        self._manager = None

    def _set_aside(self, paths):
        """Moves files into <directory>/damaged/ (a name already there gets a _2, _3, ... suffix)."""
        if not paths:
            return
        target = os.path.join(self.directory, DAMAGED_DIR)
        with files.writing(target):
            os.makedirs(target, exist_ok=True)
            for path in paths:
                name = os.path.basename(path)
                stem, dot, rest = name.partition(".")
                destination, copy = os.path.join(target, name), 1
                while os.path.exists(destination):
                    copy += 1
                    destination = os.path.join(target, f"{stem}_{copy}{dot}{rest}")
                os.replace(path, destination)

    def _manager_for_save(self):
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(self.checkpoint, self.save_dir, self.max_to_keep)
        return self._manager

    def save(self, step):
        """Writes the checkpoint of `step` (numbered by it) and prunes beyond max_to_keep.

        A second save at the step just restored or saved writes nothing: that checkpoint holds this
        state already, and rewriting it in place is the one write that could damage it.

        Args:
            step: the training step, an int.

        Returns:
            The checkpoint's prefix.

        Raises:
            StorageError: the write failed; what it half-wrote is removed, earlier checkpoints are kept.
        """
        prefix = os.path.join(self.save_dir, f"ckpt-{step}")
        if step == self._saved_step:
            return prefix
        try:
            self._manager_for_save().save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as error:
            self._manager = None   # its in-memory list may name the failed checkpoint: reread the state
            needed = self._checkpoint_bytes()
            resumes = self._remove_half_written(step)
            then = (f"rerun the same command: it resumes from step {resumes}" if resumes is not None
                    else "rerun the same command: it starts again from step 0")
            raise files.storage_error(prefix, error, needed, "a checkpoint", then) from error
        self._saved_step = step
        return prefix

    def _remove_half_written(self, step):
        """Removes what a failed save of `step` left; returns the newest step the state file still lists."""
        files.remove_checkpoint_temporaries(self.save_dir, step)
        listed, _ = read_state(self.save_dir)
        prefix = os.path.join(self.save_dir, f"ckpt-{step}")
        if prefix not in listed:
            for path in glob.glob(glob.escape(prefix) + ".*"):
                try:
                    os.remove(path)
                except OSError as e:
                    logging.warning("Cannot remove %s, left by the failed save (%s)", path, e.strerror)
        steps = [step_of(p) for p in listed if os.path.exists(p + ".index")]
        return max(steps) if steps else None

    def _checkpoint_bytes(self):
        """About how many bytes a checkpoint takes: the newest one on disk, else the variables' size."""
        listed, _ = read_state(self.save_dir)
        for prefix in sorted(listed, key=step_of, reverse=True):
            sizes = [os.path.getsize(f) for f in checkpoint_files(prefix)]
            if len(sizes) > 1:
                return sum(sizes)
        variables = [v for v in tf.train.TrackableView(self.checkpoint).descendants()
                     if isinstance(v, tf.Variable)]
        return sum(v.shape.num_elements() * v.dtype.size for v in variables)
