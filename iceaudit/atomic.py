"""Write files so that a reader never sees half of one and a failed write
never destroys what was there: write a temporary sibling, then rename."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from iceaudit.errors import UserError, storage_full

TEMP_GLOB = ".*.tmp"  # the temporaries atomic_path writes (left behind only by a killed process)


def check_output_path(path: str | Path) -> Path:
    """`path` as a Path whose parent directory exists and is writable (else a UserError)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output path {path} is a directory; give a file name")
    if not path.parent.is_dir():
        _refuse_missing_dir(path.parent, f"output directory does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"cannot write {path}: {path.parent} is not writable")
    return path


def ensure_dir(path: str | Path, what: str = "output directory") -> Path:
    """Create directory `path` (and its parents), or say in one line why it cannot be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot use the {what} {path}: {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _refuse_missing_dir(path, f"cannot create the {what} {path} ({err.strerror})")
    if not os.access(path, os.W_OK):
        raise UserError(f"{what} {path} is not writable")
    return path


def _refuse_missing_dir(path: Path, message: str) -> None:
    blocker = next((p for p in [path, *path.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UserError(f"{message}: {blocker} is a file, not a directory")
    raise UserError(message, hint=f"Create it first (mkdir -p {path}).")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`,
    on any error it is removed and `path` is left untouched."""
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # matches TEMP_GLOB
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        full = storage_full(err, path)  # a full disk is the user's to fix: one message naming the file
        if full is None:
            raise
        raise full from None
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | Path, text: str, *, make_parents: bool = False) -> Path:
    """Write `text` to `path` atomically (temp sibling, then rename).

    Args:
        path: the file to write.
        text: its whole content (UTF-8).
        make_parents: create missing parent directories first.
    """
    path = Path(path)
    if make_parents:
        ensure_dir(path.parent)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
