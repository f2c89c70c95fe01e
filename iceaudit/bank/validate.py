"""Validate subspaces: own effect, leakage onto every other criterion, drift, true factors.

For each subspace, faces are walked to -1 and +1 units (less where its valid range,
where the walk stays faces, ends sooner: `iceaudit.bank.manifold`). Effects are measured
per unit step and in SDs of each measure across faces (so 1.0 = one standard deviation of
that criterion per unit). The SD is the one the bank calibrated each measure's unit with
(``scales``, from more faces than a small validation set has) where it is known, else the
validation faces' own:

- ``own_effect``: change of its own measure per unit (calibration makes it ~1);
- ``leakage``: |change| of every other subspace's measure per unit;
- ``drift_outside``: mean |pixel change| outside the target region per unit
  (images in [-1, 1]); ``identity_drift``: 1 - cosine of an optional identity
  embedding between -1 and +1;
- ``truth``: with a ground-truth hook (FaceLab factor readers), the change of every
  true factor per unit in its SDs -> confusion matrix; the intended factor must lead.

A subspace passes when all stated thresholds hold; failing ones are not shipped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import torch

from iceaudit.bank.edit import walk_images
from iceaudit.bank.format import Subspace
from iceaudit.criteria.spec import Measured, spec_id

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


@dataclass
class Thresholds:
    min_own_effect: float = 0.5  # SD of own measure per unit, at least
    max_own_effect: float = 2.0  # ... and at most (calibration should give ~1)
    max_leakage: float = 0.5  # SD of any other measure per unit, at most
    max_drift_outside: float = 0.25  # mean |Δpixel| outside the target region per unit, at most
    max_identity_drift: float = 0.3  # 1 - cos of identity embeddings between -1 and +1 units


def leakage_exempt(own_id: str, measures: Mapping[str, Measured], untargeted: Sequence[str] = ()) -> list[str]:
    """Ids left out of ``own_id``'s leakage check (still measured and stored): the subspaces
    measured by the very same criterion, and the ``untargeted`` ones (exempt as leakage targets,
    each with a reason in its recipe). `build_bank` and `validate_bank` both use this rule.

    Args:
        own_id: the subspace being validated.
        measures: subspace id -> its criterion's measure.
        untargeted: ids exempt as leakage targets.
    """
    own = measures.get(own_id)
    same = [k for k, m in measures.items() if own is not None and k != own_id and spec_id(m.spec) == spec_id(own.spec)]
    return same + [k for k in untargeted if k not in same and k != own_id]


def per_unit_effect(m: Measured, lo: torch.Tensor, base: torch.Tensor, hi: torch.Tensor, width: float,
                    ctx=None, sd: float | None = None) -> float:
    """Mean change of ``m`` from ``lo`` to ``hi`` frames per unit, in SDs of ``m`` (``sd``, or its SD
    across the ``base`` frames).

    Args:
        m: the criterion's measure.
        lo, base, hi: [N, 3, R, R] frames at the low end, at 0 and at the high end of the walk.
        width: the units between ``lo`` and ``hi``.
        ctx: ``m.prepare(base)``, where the caller has it already.
        sd: the measure's SD across faces, where it is known from more faces than these.
    """
    ctx = m.prepare(base) if ctx is None else ctx
    v_lo, v_hi = m.value(lo, ctx), m.value(hi, ctx)
    scale = sd if sd else float(m.value(base, ctx).std())
    return float(((v_hi - v_lo) / width).mean() / (scale or 1e-12))


def calibrated_scales(subspaces) -> dict[str, float]:
    """Subspace id -> the SD of its measure that its unit was calibrated with (where it was)."""
    out = {}
    for s in subspaces:
        sd = (s.validation.get("calibration") or {}).get("sd_measure")
        if isinstance(sd, (int, float)) and sd > 0:
            out[s.id] = float(sd)
    return out


def _frames(G, sub: Subspace, ws, alphas, chunk: int = 16) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([walk_images(G, sub, ws[i : i + chunk], alphas) for i in range(0, len(ws), chunk)])


def validate_subspace(
    G: Generator,
    sub: Subspace,
    own_id: str,
    measures: Mapping[str, Measured],
    ws: torch.Tensor,
    *,
    thresholds: Thresholds = Thresholds(),
    identity: Callable[[torch.Tensor], torch.Tensor] | None = None,
    truth: Callable[[torch.Tensor], Mapping[str, torch.Tensor]] | None = None,
    truth_factor: str | None = None,
    ignore: Sequence[str] = (),
    scales: Mapping[str, float] | None = None,
) -> dict:
    """Figures and verdict for one subspace. ``measures`` maps ids to criteria measures
    (``own_id`` is the subspace's own); ``ignore`` lists ids left out of the leakage check
    (e.g. another subspace measured by the very same criterion); ``scales`` maps ids to the
    calibrated SD of their measure (`calibrated_scales`; others use the validation faces' SD)."""
    scales = scales or {}
    # one unit each way, or less where the walk leaves the faces sooner (its valid range)
    a_lo, a_hi = max(-1.0, sub.walk_range[0]), min(1.0, sub.walk_range[1])
    width = a_hi - a_lo
    frames = _frames(G, sub, ws, [a_lo, 0.0, a_hi])  # [N, 3, 3, R, R]
    lo, base, hi = frames[:, 0], frames[:, 1], frames[:, 2]
    effects, own_ctx = {}, None
    with torch.no_grad():
        for mid, m in measures.items():
            ctx = m.prepare(base)
            if mid == own_id:
                own_ctx = ctx
            effects[mid] = per_unit_effect(m, lo, base, hi, width, ctx, scales.get(mid))
    own = effects.get(own_id, float("nan"))
    leakage = {k: abs(v) for k, v in effects.items() if k != own_id and k not in ignore}
    unchecked = {k: abs(v) for k, v in effects.items() if k != own_id and k in ignore}
    diff = (hi - lo).abs() / width  # per unit
    mask = getattr(own_ctx, "mask", None)
    if mask is not None:
        m = torch.nn.functional.interpolate(mask.expand(ws.shape[0], -1, -1, -1), size=diff.shape[-2:], mode="nearest")
        drift = float((diff * (1 - m)).sum() / (3 * (1 - m).sum()).clamp_min(1))
    else:
        drift = float(diff.mean())
    report = {
        "own_effect": own,
        "leakage": leakage,
        "max_leakage": max(leakage.values(), default=0.0),
        "leakage_unchecked": unchecked,  # measured, not held to max_leakage (see ``ignore``)
        "drift_outside": drift,
        "faces": int(ws.shape[0]),
        "walked": [a_lo, a_hi],
        "sd_from": {k: ("calibration" if k in scales else "validation faces") for k in effects},
        "thresholds": asdict(thresholds),
    }
    reasons = []
    if own_id in measures and not thresholds.min_own_effect <= own <= thresholds.max_own_effect:
        reasons.append(f"own effect {own:.3g} SD/unit outside [{thresholds.min_own_effect}, {thresholds.max_own_effect}]")
    if report["max_leakage"] > thresholds.max_leakage:
        worst = max(leakage, key=leakage.get)
        reasons.append(f"leaks {leakage[worst]:.3g} SD/unit onto {worst} (max {thresholds.max_leakage})")
    if drift > thresholds.max_drift_outside:
        reasons.append(f"pixel drift outside the region {drift:.3g}/unit (max {thresholds.max_drift_outside})")
    if identity is not None:
        with torch.no_grad():
            a, b = identity(lo), identity(hi)
        idd = float(1 - torch.nn.functional.cosine_similarity(a, b, dim=1).mean())
        report["identity_drift"] = idd
        if idd > thresholds.max_identity_drift:
            reasons.append(f"identity drift {idd:.3g} (max {thresholds.max_identity_drift})")
    if truth is not None:
        with torch.no_grad():
            f_lo, f_0, f_hi = truth(lo), truth(base), truth(hi)
        delta = getattr(truth, "difference", lambda name, d: d)  # wraps cyclic factors
        t_eff = {k: float((delta(k, f_hi[k] - f_lo[k]) / width).mean() / (float(f_0[k].std()) or 1e-12)) for k in f_0}
        report["truth"] = t_eff
        lead = max(t_eff, key=lambda k: abs(t_eff[k]))
        report["truth_lead"] = lead
        if truth_factor is not None:
            report["truth_factor"] = truth_factor
            if lead != truth_factor:
                reasons.append(f"moves true factor {lead!r} most, not {truth_factor!r}")
    report["passed"] = not reasons
    report["reasons"] = reasons
    return report


def confusion_matrix(reports: Mapping[str, dict]) -> tuple[list[str], list[str], list[list[float]]]:
    """Rows: subspaces; columns: true factors; |effect| in SD per unit (from `truth` entries)."""
    rows = [k for k, r in reports.items() if "truth" in r]
    cols = sorted({f for k in rows for f in reports[k]["truth"]})
    return rows, cols, [[abs(reports[r]["truth"].get(c, 0.0)) for c in cols] for r in rows]
