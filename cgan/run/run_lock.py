"""One trainer per workdir: an exclusive lock file naming its owner.

    with run_lock.hold(workdir):
        ...train...

The lock is `workdir/.lock`, held with flock(2) for the life of the process and containing the
owner's pid and host. The kernel drops a flock when its process dies (even by kill -9), so a lock
file left by a dead trainer is stale: the next trainer takes it over and says so. A live owner makes
a second trainer stop with a message naming its pid.
"""

import contextlib
import fcntl
import os
import socket

from absl import logging

from cgan.core.errors import UserError

LOCK_FILE = ".lock"


def _owner(text):
    return text.strip() or "an unknown process"


@contextlib.contextmanager
def hold(workdir):
    """Holds the workdir's lock for the duration of the block.

    Raises:
        UserError: another live process holds it.
    """
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(os.pread(fd, 256, 0).decode(errors="replace"))
            raise UserError(f"{workdir} is in use by another trainer ({owner}): wait for it to finish, "
                            f"stop it, or pass another --workdir") from None
        previous = os.pread(fd, 256, 0).decode(errors="replace").strip()
        if previous:
            logging.warning("Taking over the stale lock of %s left by %s, which is no longer running",
                            workdir, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # an empty lock file is not stale: the run ended cleanly
    finally:
        os.close(fd)
