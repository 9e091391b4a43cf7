"""Writing files safely: atomic writes, one-line errors for storage faults, and cleaning up after kills.

    files.atomic_write_bytes("runs/demo/generator.json", data)
    files.atomic_write_json("runs/demo/eval/report_step_003000.json", report)
    files.atomic_write_bytes("out/Train/nevus/x.png", data, sync=False)   # one of many: flushed together
    files.atomic_save(model.save, "runs/demo/generator.keras")
    files.atomic_save_all([(g.save, "generator.keras", check), (d.save, "discriminator.keras", check)])
    with files.writing("runs/demo/eval/report.json"):   # storage faults in the block -> StorageError
        write_report()
    files.remove_stale_temporaries("runs/demo")   # once the workdir's lock is held

Every file is written to a sibling temporary `.tmp<pid>_<name>` (the suffix is kept: Keras insists on
`.keras`) and renamed over the target: a reader sees the old file or the new one, never half of one; a
failed write leaves the old file and no temporary. A process killed in between leaves the temporary;
`remove_stale_temporaries` deletes those of writers no longer running, and TensorFlow's checkpoint
temporaries left the same way.

A write that fails because of the storage (ENOSPC, EDQUOT, EFBIG, EACCES, EPERM, EROFS, EIO) is the
user's to fix, not a bug: `writing(path)` and the atomic writers turn it (an OSError, or the TensorFlow
error carrying the same system text) into a `StorageError`, a one-line UserError naming the path, the
cause, the filesystem's free space and the fix; other errors keep their traceback. `storage_error`
builds the message for a caller whose every error is a storage failure (cgan.run.checkpoints).
TensorFlow's summary writer (2.21) reports no failed write (`tf.summary.*`, `flush()` and `close()`
return normally and the events are lost), so a full disk shows at the next checkpoint, grid or export.
"""

import contextlib
import errno
import json
import os
import re
import shutil
import sys

from absl import logging

from cgan.core.errors import UserError

_TEMPORARY = re.compile(r"^\.tmp(\d+)_.")
# TensorFlow's CheckpointManager: the `checkpoint` state file is renamed from `checkpoint.tmp<uuid hex>`;
# a sharded save writes into `<prefix>_temp/` and merges it into `<prefix>.index` / `.data-*`.
_TF_STATE_TEMPORARY = re.compile(r"^checkpoint\.tmp[0-9a-f]{32}$")
_TF_SHARD_TEMPORARY = re.compile(r"^ckpt-\d+_temp$")

_MIB = 1 << 20
_SPACE = (errno.ENOSPC, errno.EDQUOT)
_PERMISSION = (errno.EACCES, errno.EPERM)
# The faults of the storage, in the order their system text is looked for in a TensorFlow message.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


class StorageError(UserError, OSError):
    """A write that failed because of the storage, with the fix in its one-line message.

    Also an OSError (errno, strerror and filename are the failed write's), so code that tolerates a
    failed write of a cache, say, with `except OSError` still does.
    """

    def __init__(self, message, error_number=None, strerror=None, filename=None):
        super().__init__(message)
        self.errno, self.strerror, self.filename = error_number, strerror, filename

    def __str__(self):
        return self.args[0]


def _tensorflow_error(error):
    """True for a tf.errors.OpError (without importing TensorFlow: if it is not loaded, it raised nothing)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(error, tf.errors.OpError)


def _tensorflow_reason(message):
    """TensorFlow's '{{function_node …}} /path/x.tempstate1; No space left on device [Op:SaveV2]' -> the cause."""
    message = re.sub(r"\{\{.*?\}\}|\s*\[Op:\w+\]", "", message).strip()
    return message.rsplit("; ", 1)[-1].strip()


def storage_errno(error):
    """The errno of a storage fault behind `error` (an OSError or a TensorFlow error), else None."""
    if isinstance(error, OSError):
        return error.errno if error.errno in STORAGE_ERRNOS else None
    if _tensorflow_error(error):
        message = error.message or ""
        for number in STORAGE_ERRNOS:
            if os.strerror(number) in message:
                return number
    return None


def filesystem(path):
    """(mount point, free bytes) of the filesystem that holds `path` or would hold it."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    mount = existing if os.path.isdir(existing) else os.path.dirname(existing)
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    return mount, shutil.disk_usage(existing).free


def _mib(size):
    size /= _MIB
    return f"{size:.0f}" if size >= 10 else f"{size:.1f}"


def storage_error(path, error, needed_bytes=None, what="the file", then="rerun the same command"):
    """The one-line StorageError for a failed write of `path`.

    Args:
        path: what was being written (the target, not its temporary).
        error: the OSError or TensorFlow error the write raised.
        needed_bytes: about how much the write needs, when known (said beside the free space).
        what: what needs those bytes, e.g. "a checkpoint".
        then: what to do once fixed, e.g. "rerun the same command: it resumes from step 400".

    Returns:
        A StorageError whose message names the path, the cause, the free space and the fix.
    """
    number = storage_errno(error)
    if isinstance(error, OSError):
        reason = error.strerror or str(error) or type(error).__name__
    elif _tensorflow_error(error):
        reason = _tensorflow_reason(error.message or "") or type(error).__name__
    else:
        reason = str(error) or type(error).__name__
    reason = " ".join(reason.split())[:200]
    mount, free = filesystem(path)
    space = f"free space on {mount} ({_mib(free)} MiB free"
    space += f"; {what} needs about {_mib(needed_bytes)} MiB)" if needed_bytes else ")"
    elsewhere = "or pass a --workdir on another filesystem"
    if number in _SPACE:
        fix = f"{space} {elsewhere}"
    elif number == errno.EFBIG:
        fix = (f"a file-size limit was reached (`ulimit -f`, or the largest file {mount} holds): raise it "
               f"{elsewhere}")
    elif number == errno.EROFS:
        fix = f"{mount} is read-only: remount it read-write {elsewhere}"
    elif number in _PERMISSION:
        fix = f"make {os.path.dirname(os.path.abspath(path))} writable by this user {elsewhere}"
    else:
        fix = f"check the device (`dmesg`) and the {space} {elsewhere}"
    return StorageError(f"cannot write {path} ({reason}): {fix}, then {then}", number, reason, path)


@contextlib.contextmanager
def writing(path, needed_bytes=None, what="the file", then="rerun the same command"):
    """Turns a storage fault raised in the block into a StorageError about `path` (see storage_error).

    Other errors, and StorageErrors raised inside, pass through unchanged.
    """
    try:
        yield
    except StorageError:
        raise
    except Exception as error:
        if storage_errno(error) is None:
            raise
        raise storage_error(path, error, needed_bytes, what, then) from error


def temporary_path(path):
    """The sibling temporary that `path` is written to before the rename."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".tmp{os.getpid()}_{name}")


def atomic_save_all(saves):
    """Writes several files as one change: each to its temporary, every check passes, then the renames.

    A failed write or check leaves every target as it was and no temporary. The renames themselves
    (same directory, no data written) come last; should one fail, the targets before it are new.

    Args:
        saves: (save, path) or (save, path, check) tuples: save(temporary) writes the file;
            check(temporary), when given, raises if what was written is not right.

    Raises:
        StorageError: a write failed because of the storage.
    """
    staged, path = [], None
    try:
        for save, path, *check in saves:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            tmp = temporary_path(path)
            staged.append((tmp, path))
            save(tmp)
            for verify in check:
                verify(tmp)
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            _remove(tmp)
        # Translated once the temporaries are gone, so that the free space it states is what is left.
        with writing(path):
            raise


def atomic_save(save, path, check=None):
    """Calls save(temporary), then check(temporary) when given, and renames the result over `path`."""
    atomic_save_all([(save, path) + ((check,) if check else ())])


def bytes_saver(data, sync=True):
    """A save function for atomic_save / atomic_save_all that writes `data` (and, with sync, flushes it to disk)."""
    def save(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
    return save


def atomic_write_bytes(path, data, sync=True):
    """Writes bytes to a sibling temporary file, flushes it to disk, then renames it over `path`.

    Args:
        path: the file to write.
        data: its bytes.
        sync: flush the file to disk before the rename. Without it the rename is still atomic for
            readers, but a power cut may lose the file's bytes. A bulk writer (cgan.share.dataset_export)
            passes False for each of its many files and flushes them all at once (os.sync) before
            it writes, synced, the file that lists them.
    """
    atomic_save(bytes_saver(data, sync), path)


def atomic_write_json(path, value, sort_keys=False):
    """Writes `value` as indented JSON text ending in a newline (atomic_write_bytes, synced)."""
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=sort_keys) + "\n").encode())


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


def remove_checkpoint_temporaries(checkpoint_dir, step=None):
    """Deletes what TensorFlow's checkpoint writer leaves when a save is cut short.

    That is the state file's `checkpoint.tmp<uuid>` and the shard folders `ckpt-N_temp/` (only N = step
    when step is given). They carry no pid: checkpoint_dir must be written by the caller alone.

    Returns:
        The removed paths, sorted.
    """
    if not os.path.isdir(checkpoint_dir):
        return []
    shards = re.compile(rf"^ckpt-{step}_temp$") if step is not None else _TF_SHARD_TEMPORARY
    removed = sorted(os.path.join(checkpoint_dir, name) for name in os.listdir(checkpoint_dir)
                     if _TF_STATE_TEMPORARY.match(name) or shards.match(name))
    for path in removed:
        _remove(path)
    return removed


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
    for path in removed:
        _remove(path)
    if checkpoint_dir:
        removed += remove_checkpoint_temporaries(checkpoint_dir)
    for path in removed:
        logging.info("Removed %s, left half-written by a process that was killed", path)
    return sorted(removed)
