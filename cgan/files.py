"""Atomic file writes, and cleaning up after writers that were killed mid-write.

    files.atomic_write_bytes("runs/demo/generator.json", data)
    files.atomic_save(model.save, "runs/demo/generator.keras")
    files.remove_stale_temporaries("runs/demo")   # once the workdir's lock is held

Every file is written to a sibling temporary named `.tmp<pid>_<name>` (the suffix is kept: Keras
insists on `.keras`) and renamed over the target, so a reader sees the old file or the new one, never
half of one. A process killed between the two (kill -9, out of memory, power) leaves the temporary
behind; `remove_stale_temporaries` deletes those whose writer is no longer running, together with the
temporaries TensorFlow's checkpoint writer leaves in the same situation.
"""

import os
import re
import shutil

from absl import logging

_TEMPORARY = re.compile(r"^\.tmp(\d+)_.")
# TensorFlow's CheckpointManager: the `checkpoint` state file is renamed from `checkpoint.tmp<uuid hex>`;
# a sharded save writes into `<prefix>_temp/` and merges it into `<prefix>.index` / `.data-*`.
_TF_STATE_TEMPORARY = re.compile(r"^checkpoint\.tmp[0-9a-f]{32}$")
_TF_SHARD_TEMPORARY = re.compile(r"^ckpt-\d+_temp$")


def temporary_path(path):
    """The sibling temporary that `path` is written to before the rename."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".tmp{os.getpid()}_{name}")


def atomic_save(save, path):
    """Calls save(temporary_path) and renames the result over `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temporary_path(path)
    try:
        save(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_bytes(path, data):
    """Writes bytes to a sibling temporary file, flushes it to disk, then renames it over `path`."""
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    atomic_save(write, path)


def _process_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def remove_stale_temporaries(workdir, checkpoint_dir=None):
    """Deletes the half-written files that killed writers left in workdir (recursively).

    Our own `.tmp<pid>_*` files go only when process <pid> is not running. TensorFlow's checkpoint
    temporaries carry no pid, so they are looked for only in checkpoint_dir, which must be a directory
    that the caller alone writes to (the trainer holding the workdir lock).

    Returns:
        The removed paths, sorted.
    """
    removed = []
    for directory, subdirs, names in os.walk(workdir):
        for name in names + subdirs:
            match = _TEMPORARY.match(name)
            if match and not _process_running(int(match.group(1))):  # our own pid is running too
                removed.append(os.path.join(directory, name))
    if checkpoint_dir and os.path.isdir(checkpoint_dir):
        removed += [os.path.join(checkpoint_dir, name) for name in os.listdir(checkpoint_dir)
                    if _TF_STATE_TEMPORARY.match(name) or _TF_SHARD_TEMPORARY.match(name)]
    for path in removed:
        _remove(path)
        logging.info("Removed %s, left half-written by a process that was killed", path)
    return sorted(removed)
