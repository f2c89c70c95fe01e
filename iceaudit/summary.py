"""The audit's summary.json: the one record that the report and the gate read.

Written by `iceaudit.audit`, read by `iceaudit.report` and `iceaudit.gate`
without any model. Top-level keys (schema version 1):

- ``schema_version``: int
- ``classifier``: {name, path, sha256, positive_class, threshold}
- ``generator``: {name, fingerprint, resolution}
- ``bank``: {name, path, subspaces: [{id, name, tags, unit, step_range}]}
- ``settings``: {n_samples, seed, psi, alphas, n_null, device, ...}
- ``verdict``: one plain-language paragraph
- ``drivers``: ranked list of `Driver` records (strongest first)
- ``counterfactuals``: {per_subspace: {id: {success_rate, median_step}}, best: [...]}
- ``fairness``: {protected: [ids], findings: [...]}
- ``validity``: {null_floor: ..., own_criterion: ..., leakage: ...}
- ``baselines``: Captum and latent-attribution results (may be {}), written by
  `iceaudit.audit.baselines.run_baselines`; paths are relative to the audit dir:

  - ``schema`` (1), ``methods`` [names run], ``threshold``, ``options`` {...},
    ``n_faces``, ``resolution``, ``labels`` [parser part names]
  - ``pixel``: {method: {``status``: "ok", ``seconds``, ``seconds_per_face``,
    ``regions``: {part: {mass_share, area_share, ratio}} (feature_ablation:
    {importance, abs_importance, share, area_share}), ``region_ranking``
    [parts, strongest first], ``map`` "figures/baseline_<method>.png",
    ``quality``: {infidelity, sensitivity_max, sensitivity_max_relative}}
    | {``status``: "skipped", ``reason``}}; ``maps_npz`` (mean maps, [R, R] each)
  - ``latent``: {baseline, n_steps, n_faces, completeness_gap, seconds,
    ``subspaces``: {id: {attribution, abs_attribution, share,
    covariant_attribution, slope_estimate, abs_slope_estimate, dims_in_s}},
    ``ranking`` [ids], ``ranking_by_slope_estimate`` [ids]}
  - ``attfind``: {n_faces, n_channels, n_evaluated, threshold, seconds, renders,
    ``classes``: {"positive"|"negative": {n_faces_to_flip, ``top``: [{channel
    "b8.conv1:2", layer, index, direction "min"|"max", mean_effect,
    estimated_flip_share}], sufficiency_curve [top-1..k], sufficiency}},
    ``channels``: [{channel, layer, index, direction, mean_effect, best_match
    {subspace, latent_overlap, image_cosine} | null, explained_by_bank, region
    | null, region_votes {part: share}}], ``unnamed_drivers``: [same records
    + ``walk_strip`` "figures/unnamed_<layer>_<c>.png"]}
  - ``agreement``: {pixel_method, subspace_regions {id: part | null},
    walk_vs_latent / walk_vs_latent_slope / walk_vs_region / latent_vs_region:
    {rho | null, p_value | null, n, note?}, walk_vs_region_by_method {method: {...}}, ``statement``
    (plain language)}
- ``provenance``: {iceaudit_version, torch, python, platform, command, seeds, hashes, created}
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iceaudit.errors import UserError

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema_version", "drivers", "provenance")


@dataclass
class Driver:
    """One subspace's effect on the classifier's decision score."""

    subspace: str  # bank subspace id
    name: str
    tags: list[str]
    slope: float  # mean d(score)/d(unit), signed
    ci_low: float  # bootstrap 95% CI of the slope over faces
    ci_high: float
    mean_abs_change: float  # mean |score(alpha) - score(0)| over the walk grid
    flip_rate: float  # share of faces whose decision flips within the step range
    monotonicity: float  # mean Spearman rho of score vs alpha, per face
    heterogeneity: float  # SD of per-face slopes
    null_abs_slope: float  # null floor: |slope| of random directions (95th pct)
    p_value: float  # vs the null floor, one-sided
    p_adjusted: float  # Holm-adjusted over subspaces
    significant: bool
    rank: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def write_summary(summary: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    payload = dict(summary)
    payload["schema_version"] = SCHEMA_VERSION
    payload["drivers"] = [asdict(d) if isinstance(d, Driver) else d for d in payload.get("drivers", [])]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)  # never leave a half-written summary behind
    return path


def load_summary(path: str | Path) -> dict[str, Any]:
    """Read and check a summary.json (or the audit directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise UserError(f"no audit summary at {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise UserError(f"{path}: not an iceaudit summary (missing {', '.join(missing)})")
    if data["schema_version"] != SCHEMA_VERSION:
        raise UserError(
            f"{path}: summary schema version {data['schema_version']!r} is not supported "
            f"(this iceaudit reads version {SCHEMA_VERSION})"
        )
    return data
