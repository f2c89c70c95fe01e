"""The audit's output does not drift: a small audit of the synthetic world, run through the
CLI, gives the committed summary.json (tests/data/golden/summary.json) — every key and
string the same, every number within 1e-4 relative (bootstrap bounds within 1e-2) — except
what describes the run rather than its result (provenance, timings).

Why not tighter: the same code on two machines (other CPUs, other oneDNN kernels) gives
scores a few float32 ulps apart (measured 5e-7 relative); differences of near-equal
numbers (completeness gaps, infidelity) carry that to ~1e-5, and a BCa bootstrap bound, an
order statistic of 2,000 resamples, moves by a resample (measured 1.2e-3). A change of method
moves the numbers far more than that.

After a change that is meant to move the numbers, regenerate it and review the diff:

    ICEAUDIT_REGOLD=1 python -m pytest tests/audit/test_golden_summary.py
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch

from audit_synth import write_world
from cli_helpers import run_cli
from iceaudit.audit.provenance import bank_hash
from iceaudit.bank.format import load_bank

GOLDEN = Path(__file__).parents[1] / "data" / "golden" / "summary.json"
RUN_ONLY = ("provenance",)  # where and when it ran, not what it found
REL_TOL = 1e-4
BOOTSTRAP_BOUNDS = ("ci_low", "ci_high")  # order statistics of the bootstrap: REL_TOL_BOUND
REL_TOL_BOUND = 1e-2


def _result(summary: dict) -> dict:
    def strip(value, key=""):
        if isinstance(value, dict):
            return {k: strip(v, k) for k, v in value.items() if k not in RUN_ONLY and not k.startswith("seconds")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(summary)


def _same(a, b, where="summary", rel=REL_TOL) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))} differ"]
        return [d for k in a for d in _same(a[k], b[k], f"{where}.{k}", REL_TOL_BOUND if k in BOOTSTRAP_BOUNDS else rel)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _same(x, y, f"{where}[{i}]", rel)]
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
                and (math.isclose(a, b, rel_tol=rel, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))):
            return []
        return [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


@pytest.fixture
def one_thread():
    """Float reductions split across threads round differently, so the world and the audit are
    built on one thread: the same bytes on a 2-core CI runner and a 16-core workstation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_small_audit_gives_the_committed_summary(one_thread, tmp_path, capsys):
    (tmp_path / "world").mkdir()
    world = write_world(tmp_path / "world")
    out = tmp_path / "audit"
    code, _, err = run_cli(capsys, "audit", "--classifier", str(world["classifier"]), "--card", str(world["card"]),
                           "--generator", str(world["generator"]), "--bank", str(world["bank"]), "--n", "8",
                           "--steps", "5", "--null", "3", "--seed", "4", "--baselines", "saliency,latent",
                           "--out", str(out))
    assert code == 0, err
    got = _result(json.loads((out / "summary.json").read_text()))
    for entry in got.get("bank", {}), got.get("classifier", {}):
        entry.pop("path", None)  # temporary directories
    # Input identities are checked against the inputs, then left out: a TorchScript archive
    # carries the source path of the traced code, so its hash depends on the checkout's place.
    assert got["classifier"].pop("sha256") == hashlib.sha256(Path(world["classifier"]).read_bytes()).hexdigest()
    assert got["bank"].pop("hash") == bank_hash(load_bank(world["bank"]))
    got["generator"]["name"] = Path(got["generator"]["name"]).name
    if os.environ.get("ICEAUDIT_REGOLD"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    differences = _same(got, want)
    assert not differences, "\n".join(differences[:20])
