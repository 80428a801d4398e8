"""The one exception type for user mistakes.

Library code raises :class:`UserError` for anything the user can fix (a missing file,
a bad column, an invalid option). The command line prints its message and exits with
code 2; nothing else is printed, no traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input or options, with a message that says how to fix it."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
