"""Errors a user can fix: raised anywhere in `cgan/`, printed as one line by the entry points.

      from cgan.core.errors import UserError
      raise UserError("--batch_size must be positive, got 0: pass --batch_size=16 or more")

Entry points (`trainer.py`, `sample.py`) catch `UserError`, print its message on one line to stderr and
exit with status 2. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's flags, files or data, with the fix in its message."""
