"""Errors that are the user's to fix.

Raise `UserError` for bad input (missing file, wrong format, bad policy...).
The CLI prints its message alone and exits with code 2; `--debug` adds the
traceback. Anything else escaping the CLI is a bug in iceaudit.
"""
from __future__ import annotations

import errno


class UserError(Exception):
    """Bad input or usage: one clear message, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = one_line(message)  # messages quote untrusted names: keep them one line, no terminal escapes
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


def one_line(text: str) -> str:
    """`text` with newlines and other control characters written as escapes (``\\n``, ``\\x1b``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_FULL = {errno.ENOSPC: "the disk is full", errno.EFBIG: "a file-size limit was reached",
         errno.EDQUOT: "the disk quota is exhausted"}
_FULL_WORDS = {"no space left": errno.ENOSPC, "file too large": errno.EFBIG, "quota exceeded": errno.EDQUOT}


def storage_full(err: BaseException, path: object = None) -> UserError | None:
    """The one-line message for a write that failed because storage ran out
    (ENOSPC, EFBIG under RLIMIT_FSIZE, EDQUOT) of the file `path`, or None for any
    other error.
    Libraries that wrap the OS error (pyarrow) are recognised by their text."""
    if not isinstance(err, OSError):
        return None
    code = err.errno if err.errno in _FULL else next(
        (c for words, c in _FULL_WORDS.items() if words in str(err).lower()), None)
    if code is None:
        return None
    target = path if path is not None else getattr(err, "filename", None)
    where = f" while writing {target}" if target else ""
    return UserError(f"{_FULL[code]}{where}: that file was not written; files already complete are intact",
                     hint="Free some space and run the same command again (an interrupted audit or sweep: add --resume).")


def brief(err: BaseException) -> str:
    """One informative line of a library's exception, for a UserError message.
    torch's refused ``weights_only`` loads put the reason after a long preamble."""
    text = str(err).strip()
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line or type(err).__name__
