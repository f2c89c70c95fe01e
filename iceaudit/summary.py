"""The audit's summary.json: the one record that the report and the gate read.

Written by `iceaudit.audit`, read by `iceaudit.report` and `iceaudit.gate`
without any model. Paths inside it are relative to the audit directory.
Top-level keys (schema version 1); keys marked (report) are what the report
reads, (gate) what the gate reads; everything not marked "required" may be
absent, and the report then says what is missing instead of failing.

- ``schema_version``: int (required)
- ``classifier``: {name, path, sha256, positive_class, threshold} (report:
  name, positive_class, threshold — the decision threshold on the score)
- ``generator``: {name, fingerprint, resolution} (report)
- ``bank``: {name, path, subspaces: [{id, name, tags, unit, step_range,
  description}]} (report, gate: ids and tags are what policy rules may name;
  the tag ``protected`` marks protected attributes)
- ``settings``: {n_samples, seed, psi, alphas, n_null, device, ...} (report:
  n_samples, alphas, n_null)
- ``verdict``: one plain-language paragraph (report: shown first; when empty
  the report writes one with `compose_verdict`)
- ``drivers``: ranked list of `Driver` records, strongest first (required;
  report and gate: subspace, name, tags, slope, ci_low, ci_high, flip_rate,
  significant, null_abs_slope, p_adjusted, monotonicity, mean_abs_change)
- ``counterfactuals`` (report):
  ``per_subspace``: {id: {success_rate, median_step}} — share of faces that
  some step within range flips, and the median |step| (units) that does it
  (null when none flips);
  ``best``: [{sample, subspace, step, score_before, score_after, original,
  counterfactual, diff?}] — one entry per shown face: the smallest flipping
  edit over all subspaces; ``original``/``counterfactual``/``diff`` are image
  paths.
- ``walk_strips`` (report): {id: [{sample, image, alphas, scores?}]} — one
  image per (subspace, face): the frames at ``alphas`` side by side, equal
  widths, left to right. The report prints each frame's score from
  results.parquet (row sample, subspace, alpha) or, failing that, ``scores``.
- ``fairness`` (report): {protected: [ids], findings: [{subspace,
  statement}]} — ``protected`` defaults to the bank's ``protected`` tags.
- ``validity`` (report):
  ``null_floor``: {n_directions, quantile, abs_slope} — the ``quantile`` (1 - level/2) of the pooled |slope| of
  random directions (same space, layers and norm as each subspace);
  ``own_criterion``: {id: {criterion, effect_per_unit, expected, ok}} — how
  much one unit of the walk moves the subspace's own criterion (calibrated to
  ``expected``, normally 1.0);
  ``leakage``: {id: {other_id: effect_per_unit}} — how much the walk moves
  the other subspaces' criteria, in their units;
  ``sanity``: {randomised_classifier: {n_significant, max_abs_slope, passed,
  note}} — the audit rerun on a classifier with re-initialised weights.
- ``baselines`` (report): Captum and latent-attribution results (may be {}),
  written by `iceaudit.audit.baselines.run_baselines`; paths are relative to
  the audit dir; tests/data/report_baselines/summary.json is a real example:

  - ``schema`` (1), ``methods`` [names run], ``threshold``, ``options`` {...},
    ``n_faces``, ``resolution``, ``labels`` [parser part names]
  - ``pixel``: {method: {``status``: "ok", ``seconds``, ``seconds_per_face``,
    ``regions``: {part: {mass_share, area_share, ratio}} (feature_ablation:
    {importance, abs_importance, share, area_share}), ``region_ranking``
    [parts, strongest first], ``map`` "figures/baseline_<method>.png",
    ``quality``: {infidelity, sensitivity_max | null, sensitivity_max_relative
    | null, sensitivity_note?}} | {``status``: "skipped", ``reason``}};
    ``maps_npz`` (mean maps, [R, R] each)
  - ``latent``: {status "ok", baseline, n_steps, n_faces, completeness_gap,
    seconds, seconds_per_face, ``subspaces``: {id: {attribution,
    abs_attribution, share, covariant_attribution, slope_estimate,
    abs_slope_estimate, dims_in_s}}, ``ranking`` [ids],
    ``ranking_by_slope_estimate`` [ids]} | {status "skipped", reason}
  - ``attfind``: {status, n_faces, n_channels, n_evaluated, threshold, seconds,
    seconds_per_face, renders, note?, ``classes``: {"positive"|"negative":
    {n_faces_to_flip, ``top``: [{channel "b8.conv1:2", layer, index, position,
    direction "min"|"max", mean_effect, estimated_flip_share}],
    sufficiency_curve [top-1..k], sufficiency}}, ``channels``: [{channel,
    layer, index, direction, mean_effect, best_match {subspace,
    latent_overlap, image_cosine} | null, explained_by_bank, region | null,
    region_votes {part: share}, walk_strip?}], ``unnamed_drivers``: [the
    channels records not explained by the bank, each with ``walk_strip``
    "figures/unnamed_<layer>_<c>.png" (rows: faces; columns: the channel from
    its min to its max)]}
  - ``agreement``: {pixel_method, subspace_regions {id: part | null},
    walk_vs_latent / walk_vs_latent_slope / walk_vs_region / latent_vs_region:
    {rho | null, p_value | null, n, note?}, walk_vs_region_by_method {method:
    {...}}, ``statement`` (plain language)}
- ``provenance`` (required; report): {iceaudit_version, torch, python,
  platform, command, seeds, hashes: {input: sha256}, created,
  synthetic_fixture?} — ``synthetic_fixture: true`` marks made-up test data
  (the report then says so on its first page).

results.parquet (report): long table with columns sample (int), subspace
(str), alpha (float, semantic units), score (float). Null walks use subspace
``null:<id>:<k>`` (k-th random direction matched to subspace ``id``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iceaudit.errors import UserError

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema_version", "drivers", "provenance")


@dataclass
class DriverEvidence:
    """What a driver's call rests on, beyond its headline numbers (``extra`` in summary.json).
    Slopes are per unit of the subspace; the null figures are random directions rescaled to
    change the image as much as the subspace does."""

    margin_share: float  # |slope| x range width / median |score - threshold|: the practical size
    median_margin: float  # median |score - threshold| of the unedited faces
    beats_null: bool  # Holm-adjusted p below the level (before the practical-size condition)
    end_slope: float  # end-to-end slope tested against the nulls
    null_sigma: float | None  # the nulls' pooled SD (per unit)
    null_df: float  # its degrees of freedom
    null_slopes: list[float]  # this subspace's null end slopes (per unit)
    image_change: float  # mean image change per unit of the walk
    mean_abs_slope: float  # mean over faces of |per-face slope|
    ci_excludes_zero: bool
    unit: str  # what one unit means (the bank's words)
    step_range: list[float]  # the walked range, in units
    space: str  # W, W+ or S
    basis_rows: int  # rows of the subspace's basis; only the first (principal) one is walked
    rows_audited: int = 1


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
    extra: DriverEvidence | None = None  # None only in hand-made records (written as {})


def agreement_word(rho: float | None) -> str:
    """Plain reading of a rank correlation between two rankings of subspaces."""
    if rho is None:
        return "cannot be compared"
    if rho >= 0.7:
        return "agree"
    if rho >= 0.3:
        return "partly agree"
    if rho > -0.3:
        return "do not agree"
    return "rank them in opposite order"


def write_summary(summary: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    payload = dict(summary)
    payload["schema_version"] = SCHEMA_VERSION
    payload["drivers"] = [{**asdict(d), "extra": asdict(d.extra) if d.extra else {}} if isinstance(d, Driver) else d
                          for d in payload.get("drivers", [])]
    from iceaudit.atomic import write_text

    return write_text(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")  # never half-written


def load_summary(path: str | Path) -> dict[str, Any]:
    """Read and check a summary.json (or the audit directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise UserError(f"no audit summary at {path}")
    from iceaudit.validation import read_record

    data = read_record(path, "audit summary", "json")
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
    check_shape(data, path)
    _check_drivers(data, path)
    return data


def check_shape(data: dict[str, Any], path: str | Path) -> None:
    """Refuse a summary whose sections do not have the shape of `SUMMARY` (one line
    naming the first wrong field; the value itself is never echoed, it may be huge)."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_summary_validator().iter_errors(data))
    if error is None:
        return
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "top level"
    if error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        problem = f"lacks the key {missing!r}"
    elif error.validator == "type":
        names = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true or false",
                 "object": "an object", "array": "an array", "null": "null"}
        wanted = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
        wanted = " or ".join(names.get(w, w) for w in wanted)
        problem = f"must be {wanted}, not {_json_type(error.instance)}"
    else:
        problem = f"fails the {error.validator} rule"
    raise UserError(f"{path}: not a well-formed iceaudit summary: {where} {problem}",
                    hint="Re-run the audit with this iceaudit, or restore the summary.json it wrote.")


@functools.cache
def _summary_validator():
    import jsonschema

    from iceaudit.summary_schema import SUMMARY

    return jsonschema.Draft202012Validator(SUMMARY)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


DRIVER_NUMBERS = ("slope", "ci_low", "ci_high", "flip_rate")


def _check_drivers(data: dict[str, Any], path: Path) -> None:
    """Every driver has the fields the report and the gate read (name and tags default)."""
    if not isinstance(data["drivers"], list):
        raise UserError(f"{path}: 'drivers' must be a list")
    for i, d in enumerate(data["drivers"]):
        if not isinstance(d, dict) or not isinstance(d.get("subspace"), str):
            raise UserError(f"{path}: driver #{i + 1} has no subspace id")
        for key in DRIVER_NUMBERS:
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise UserError(f"{path}: driver {d['subspace']!r}: {key} must be a number, not {v!r}")
        if not isinstance(d.get("significant"), bool):
            raise UserError(f"{path}: driver {d['subspace']!r}: significant must be true or false")
        d.setdefault("name", d["subspace"])
        d.setdefault("tags", [])


def _fmt_list(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def compose_verdict(drivers: list[dict[str, Any]], protected: set[str] | None = None,
                    units: dict[str, str] | None = None) -> str:
    """One plain-language paragraph from ranked driver records.

    ``protected`` holds subspace ids of protected attributes (default: drivers
    tagged ``protected``); ``units`` maps subspace ids to what one semantic unit
    means (the bank's ``unit``), named for the top driver. Drivers are taken in
    the given (ranked) order.
    """
    def is_protected(d: dict[str, Any]) -> bool:
        return d["subspace"] in protected if protected is not None else "protected" in d.get("tags", [])

    sig = [d for d in drivers if d.get("significant")]
    prot_sig = [d for d in sig if is_protected(d)]
    prot_quiet = [d for d in drivers if is_protected(d) and not d.get("significant")]
    if not sig:
        text = (
            f"None of the {len(drivers)} tested subspaces moves the classifier's decision "
            "more than random directions do: no semantic driver was found."
        )
    else:
        top = sig[0]
        second = sig[1] if len(sig) > 1 else None
        how = "mostly" if second is None or abs(top["slope"]) >= 2 * abs(second["slope"]) else "most strongly"
        label = top["name"] + (", a protected attribute" if is_protected(top) else "")
        unit = (units or {}).get(top["subspace"])
        text = (
            f"The classifier's decision is driven {how} by {label}: one unit of change"
            + (f" ({unit})" if unit else "")
            + f" moves the score by {top['slope']:+.3f} and flips the decision for "
            f"{100 * top['flip_rate']:.0f}% of faces."
        )
        also = [d["name"] for d in sig[1:] if not is_protected(d)]
        prot_also = [d["name"] for d in prot_sig if d is not top]
        parts = []
        if prot_also:
            parts.append(f"{_fmt_list(prot_also)}, " + ("a protected attribute" if len(prot_also) == 1 else "protected attributes"))
        if also:
            parts.append(_fmt_list(also))
        if parts:
            text += " It is also significantly sensitive to " + ", and to ".join(parts) + "."
    if prot_quiet:
        text += f" No significant effect of {_fmt_list([d['name'] for d in prot_quiet])} (protected)."
    return text
