"""Errors a user can act on. The CLI prints these as one line and exits non-zero."""

from __future__ import annotations

import errno
import os

# A write failed because the disk (or the user's quota) is full.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class UserError(Exception):
    """Bad input or a failed precondition, with a message naming the file or value at fault."""


class SourceError(UserError):
    """A data source failed (network down, service error, bad response)."""


class Interrupted(Exception):
    """Ctrl-C during a command that resumes when run again (create, import-legacy)."""

    def __str__(self) -> str:
        return "interrupted; run the same command again to resume"


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in DISK_FULL


def os_error_message(e: OSError) -> str:
    """One line for an OSError: the file it names, then what went wrong (a full disk said so)."""
    where = e.filename if e.filename not in (None, "") else None
    if e.errno in DISK_FULL:
        what = "no space left on device (the disk is full)" if e.errno == errno.ENOSPC else "disk quota exceeded"
    else:
        what = e.strerror or (os.strerror(e.errno) if e.errno else str(e)) or type(e).__name__
    if where is not None and e.filename2:
        return f"{_name(where)} -> {_name(e.filename2)}: {what}"
    return f"{_name(where)}: {what}" if where is not None else what


def _name(x) -> str:
    return os.fsdecode(x) if isinstance(x, (str, bytes, os.PathLike)) else str(x)
