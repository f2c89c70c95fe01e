"""The one writer and the one reader of summary.json."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from iceaudit.errors import UserError
from iceaudit.record.audit import SCHEMA_VERSION, AuditRecord
from iceaudit.record.codec import RecordError, from_json, to_json

HINT = "Re-run the audit with this iceaudit, or restore the summary.json it wrote."


def write_record(record: AuditRecord, path: str | Path) -> Path:
    """Write ``record`` as summary.json at ``path``, atomically (never half-written)."""
    from iceaudit.atomic import write_text

    payload = to_json(record)
    payload["schema_version"] = SCHEMA_VERSION
    return write_text(Path(path), json.dumps(payload, indent=2, allow_nan=False) + "\n")


def load_record(path: str | Path) -> AuditRecord:
    """Read and check a summary.json (or the audit directory holding one).

    Args:
        path: the file, or the audit directory.

    Raises:
        UserError: no summary there, another schema version, or a field of the wrong shape
            (one line naming the first wrong field; the value itself is never echoed).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise UserError(f"no audit summary at {path}")
    from iceaudit.validation import read_record

    return record_from_json(read_record(path, "audit summary", "json"), path)


def record_from_json(data: Any, where: str | Path = "summary") -> AuditRecord:
    """A parsed summary.json as an `AuditRecord`, checked against the schema first."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object")
    missing = [k for k in ("schema_version", "drivers", "provenance") if k not in data]
    if missing:
        raise UserError(f"{where}: not an iceaudit summary (missing {', '.join(missing)})")
    if data["schema_version"] != SCHEMA_VERSION:
        raise UserError(f"{where}: summary schema version {data['schema_version']!r} is not supported "
                        f"(this iceaudit reads version {SCHEMA_VERSION})")
    check_shape(data, where)
    try:
        return from_json(AuditRecord, data, "summary")
    except RecordError as err:  # a shape the schema lets through but the types do not
        raise UserError(f"{where}: not a well-formed iceaudit summary: {err.where.removeprefix('summary.')} "
                        f"{err.problem}", hint=HINT) from None


def check_shape(data: dict[str, Any], where: str | Path) -> None:
    """Refuse a summary whose sections do not have the shape of `schema.SUMMARY` (one line
    naming the first wrong field)."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is None:
        return
    at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "top level"
    if error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        problem = f"lacks the key {missing!r}"
    elif error.validator == "type":
        names = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true or false",
                 "object": "an object", "array": "an array", "null": "null"}
        wanted = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
        problem = f"must be {' or '.join(names.get(w, w) for w in wanted)}, not {_json_type(error.instance)}"
    else:
        problem = f"fails the {error.validator} rule"
    raise UserError(f"{where}: not a well-formed iceaudit summary: {at} {problem}", hint=HINT)


@functools.cache
def _validator():
    import jsonschema

    from iceaudit.record.schema import SUMMARY

    return jsonschema.Draft202012Validator(SUMMARY)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
