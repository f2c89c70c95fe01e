"""summary.json in tests: read through the typed reader, inspected (or hand-edited) as JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iceaudit.record import load_record
from iceaudit.record.codec import to_json


def summary_json(source: Any) -> dict[str, Any]:
    """The record as the JSON it is written as: from a path (file or audit directory), or from
    anything holding a ``record`` (an `AuditResult`, an `iceaudit.Audit`)."""
    record = source.record if hasattr(source, "record") else load_record(source)
    return to_json(record)


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write a (possibly deliberately damaged) summary as plain JSON."""
    path = Path(path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
