"""One writer per output directory: a second audit (or sweep) into the same
directory is refused while the first runs.

The lock is an advisory ``flock`` on ``DIR/.iceaudit.lock`` (the filelock
library): the kernel drops it when the holder exits, so a run killed with
SIGKILL leaves no stale lock and ``--resume`` can take over at once.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from iceaudit.atomic import ensure_dir
from iceaudit.errors import UserError

LOCK_NAME = ".iceaudit.lock"


@contextlib.contextmanager
def hold(directory: str | Path, what: str = "audit") -> Iterator[None]:
    """Hold the lock of `directory` (created if missing) for the ``with`` block.

    Args:
        directory: the output directory.
        what: the kind of run, for the message ("audit", "sweep").
    """
    directory = ensure_dir(directory)
    lock_path = directory / LOCK_NAME
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = _holder(lock_path)
        raise UserError(f"{directory} is in use by another {what}{holder}; nothing was changed",
                        hint="Wait for it to finish, or use another --out.") from None
    except OSError as err:
        raise UserError(f"cannot lock {directory} ({err.strerror})") from None
    try:
        with contextlib.suppress(OSError):
            lock_path.write_text(f"{os.getpid()}\n")
        yield
    finally:
        lock.release()


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def is_empty(directory: str | Path) -> bool:
    """True when `directory` holds nothing but (perhaps) its lock file."""
    return all(p.name == LOCK_NAME for p in Path(directory).iterdir())
