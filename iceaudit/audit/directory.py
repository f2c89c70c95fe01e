"""The audit directory: its early checks, the run key a `--resume` must match, and its files.

Layout::

    summary.json, results.parquet, counterfactuals.parquet, images/, figures/
    checkpoint/run.json                         what the audit is of (checked by --resume)
    checkpoint/NNN_<id>.calib.json              the subspace's image-change target and null units
    checkpoint/NNN_<id>.fSSSSSS.walks.parquet   one unit: the subspace's walk + its nulls for a face shard
    checkpoint/NNN_<id>.fSSSSSS.cf.parquet      that unit's counterfactuals
    checkpoint/baselines/<method>.json|.npy     a finished baseline method
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from iceaudit import dirlock
from iceaudit.atomic import TEMP_GLOB, atomic_path, write_text
from iceaudit.errors import UserError
from iceaudit.validation import read_record

CHECKPOINT = "checkpoint"
RUN_FILE = "run.json"


def check_out(out: str | Path, resume: bool) -> Path:
    """Cheap early check of the audit directory (before any model is loaded)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory; nothing was written")
    if resume and not (out.is_dir() and not dirlock.is_empty(out)):
        raise UserError(f"--resume: {out} holds no interrupted audit ({'it is empty' if out.is_dir() else 'it does not exist'})",
                        hint="Run without --resume to start the audit there.")
    if out.is_dir() and not dirlock.is_empty(out):
        if not resume:
            raise UserError(
                f"--out {out} is not empty; nothing was written",
                hint="Pass --resume to continue an interrupted audit there, or choose a new directory.",
            )
        if not (out / CHECKPOINT / RUN_FILE).is_file():
            raise UserError(f"--resume: {out} holds no interrupted audit ({CHECKPOINT}/{RUN_FILE} is missing); "
                            "nothing was written")
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"--out {out}: cannot create it ({parent} is not a writable directory)")
    return out


def prepare_out(out: Path, resume: bool, run_key: dict[str, Any]) -> None:
    """Create the audit directory, or check that ``resume`` continues the same audit.
    Never deletes anything."""
    check_out(out, resume)
    run_file = out / CHECKPOINT / RUN_FILE
    key = json.loads(json.dumps(run_key, default=str))
    if out.is_dir() and not dirlock.is_empty(out):
        try:
            old = read_record(run_file, "checkpoint", "json")
        except UserError:
            old = None
        if not isinstance(old, dict):
            raise UserError(f"--resume: {run_file} is damaged; start a new audit directory")
        if old != key:
            changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
            raise UserError(
                f"--resume: {out} holds an audit of different inputs or settings ({', '.join(changed)} differ); "
                "nothing was changed",
                hint="Resume with exactly the same classifier, card, generator, bank and options, or use a new --out.",
            )
        for stale in out.rglob(TEMP_GLOB):  # temporaries of a killed writer (we hold the directory's lock)
            stale.unlink(missing_ok=True)
        return
    try:
        (out / CHECKPOINT).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create the directory ({err.strerror})") from None
    write_text(run_file, json.dumps(key, indent=2, sort_keys=True) + "\n")


def resumed_batch(out: str | Path | None, resume: bool) -> int | None:
    """The batch size an audit being resumed ran with (it is part of its run key: a batch sized
    to free GPU memory must not change between the two runs), or None."""
    run_file = Path(out) / CHECKPOINT / RUN_FILE if out is not None else None
    if not resume or run_file is None or not run_file.is_file():
        return None
    try:
        old = read_record(run_file, "checkpoint", "json")
    except UserError:
        return None  # prepare_out says what is wrong with it
    batch = old.get("batch_images") if isinstance(old, dict) else None
    return batch if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1 else None


def shard_done(shard: Path) -> bool:
    return Path(f"{shard}.walks.parquet").is_file() and Path(f"{shard}.cf.parquet").is_file()


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
