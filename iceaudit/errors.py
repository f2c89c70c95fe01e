"""Errors that are the user's to fix.

Raise `UserError` for bad input (missing file, wrong format, bad policy...).
The CLI prints its message alone and exits with code 2; `--debug` adds the
traceback. Anything else escaping the CLI is a bug in iceaudit.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad input or usage: one clear message, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"
