"""Errors a user can act on. The CLI prints these as one line and exits non-zero."""


class UserError(Exception):
    """Bad input or a failed precondition, with a message naming the file or value at fault."""


class SourceError(UserError):
    """A data source failed (network down, service error, bad response)."""
