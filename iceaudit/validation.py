"""Reading untrusted text records: one size limit and one parse step per format,
each failure a `UserError` naming the file.

Every record iceaudit reads from a user (model card, policy, recipe, summary,
audit checkpoints, sweep index, bank manifest) goes through `read_record`
first, then through its own typed check (ModelCard, Policy, check_manifest,
the summary's JSON Schema). A file larger than its limit is refused before it
is read; a document nested deeper than the parser allows is refused, not a
RecursionError.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iceaudit.errors import UserError, brief

KIB, MIB = 1 << 10, 1 << 20
# Generous: a real card is under 1 KiB, a policy a few KiB, a 1,024-face audit summary a few MiB.
LIMITS = {"model card": 1 * MIB, "policy": 1 * MIB, "recipe": 1 * MIB, "audit summary": 256 * MIB,
          "checkpoint": 16 * MIB, "sweep index": 64 * MIB, "bank manifest": 64 * MIB}
FORMATS = ("json", "toml", "yaml")


def read_record(path: str | Path, what: str, fmt: str) -> Any:
    """Read and parse the text record at `path`.

    Args:
        path: the file.
        what: its kind, a key of LIMITS ("model card", "policy", ...): sets the size limit
            and names it in messages.
        fmt: "json", "toml" or "yaml" (YAML through ``safe_load``: no Python tags).
    """
    return parse_record(read_text(path, what, fmt), f"{what} {path}", fmt)


def read_text(path: str | Path, what: str, fmt: str) -> str:
    """The text of the record at `path`, refused unread above its kind's size limit (see `read_record`)."""
    path = Path(path)
    limit = LIMITS[what]
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{what} {path}: {size:,} bytes is larger than any {what} ({limit // MIB} MiB at most)")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{what} {path}: not a text file (UTF-8 {fmt.upper()} expected)") from None
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except OSError as err:
        raise UserError(f"{what} {path}: cannot read it ({err.strerror})") from None


def parse_record(text: str, where: str, fmt: str) -> Any:
    """Parse `text` as `fmt`; any parse failure (including too deep nesting) is one UserError naming `where`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown record format {fmt!r}")
    try:
        if fmt == "json":
            return json.loads(text)
        if fmt == "toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            return tomllib.loads(text)
        import yaml

        return yaml.safe_load(text)
    except RecursionError:
        raise UserError(f"{where}: nested too deeply to be read") from None
    except Exception as err:  # noqa: BLE001 - every parser error is the file's fault
        raise UserError(f"{where}: not valid {fmt.upper()} ({brief(err)})") from None
