"""Do the walks, latent attribution and pixel attribution tell the same story?

Three rankings of the bank's subspaces:

- walk:   |slope| of each driver (the audit's walks), strongest first;
- latent: mean |IG attribution in S projected on the subspace|;
- region: the pixel-attribution score of the subspace's face *region*
          (`subspace_region`: from a ``region:<part>`` tag, the subspace's
          ``validation["region"]``, its criterion spec's ``regions`` or
          landmark ``group``, or keywords in its tags / name), so subspaces sharing a region tie.

`compare` returns Spearman correlations between each pair (with the number of
subspaces they share) and a plain-language statement of where they agree and
where pixel methods cannot say what the walks say.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from iceaudit.record import Driver, agreement_word

# keyword in a subspace's tags / criterion / name -> parser region
REGION_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("glasses", "glasses"),
    ("beard", "beard"),
    ("goatee", "beard"),
    ("brow", "brows"),
    ("eye", "eyes"),
    ("gaze", "eyes"),
    ("smil", "mouth"),
    ("mouth", "mouth"),
    ("lip", "mouth"),
    ("nose", "nose"),
    ("hair", "hair"),
    ("bang", "hair"),
    ("skin", "skin"),
    ("face colour", "skin"),
    ("face color", "skin"),
    ("face_colour", "skin"),
    ("complexion", "skin"),
    ("tone", "skin"),
    ("face shape", "skin"),
    ("jaw", "skin"),
    ("background", "background"),
)
# landmark groups of a criterion -> the parser region they sit in
LANDMARK_GROUP_REGION = {"jaw": "skin", "face": "skin", "brows": "brows", "eyes": "eyes", "nose": "nose", "mouth": "mouth"}
COLOUR_WORDS = ("colour", "color", "tone", "photometr", "complexion", "lightness", "luminance")


def subspace_region(sub: Any, labels: Sequence[str] | None = None) -> str | None:
    """The face region a subspace acts on, or None when nothing says so."""
    tags = [str(t).lower() for t in getattr(sub, "tags", [])]
    for t in tags:
        if t.startswith("region:"):
            return t.split(":", 1)[1]
    region = (getattr(sub, "validation", None) or {}).get("region")
    if region:
        return str(region)
    region = _criterion_region(str(getattr(sub, "criterion", "")), labels)
    if region:
        return region
    text = " ".join(tags + [str(getattr(sub, "criterion", "")), str(getattr(sub, "name", "")), str(getattr(sub, "id", ""))]).lower()
    for word, part in REGION_KEYWORDS:
        if word in text and (labels is None or part in labels):
            return part
    return None


def _criterion_region(criterion: str, labels: Sequence[str] | None) -> str | None:
    """The region of a bank criterion spec (JSON text: ``regions`` or a landmark ``group``)."""
    import json

    try:
        spec = json.loads(criterion)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(spec, dict):
        return None
    candidates = [str(r) for r in spec.get("regions", []) or []]
    if "group" in spec:
        candidates.append(LANDMARK_GROUP_REGION.get(str(spec["group"]), str(spec["group"])))
    for part in candidates:
        if labels is None or part in labels:
            return part
    return None


def is_colour_subspace(sub: Any) -> bool:
    text = " ".join([*map(str, getattr(sub, "tags", [])), str(getattr(sub, "criterion", "")), str(getattr(sub, "name", ""))]).lower()
    return any(w in text for w in COLOUR_WORDS)


def walk_scores(drivers: Iterable[Driver]) -> dict[str, float]:
    """Subspace id -> |slope| from the audit's drivers."""
    return {d.subspace: abs(float(d.slope)) for d in drivers}


def spearman(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, Any]:
    """Spearman's rho over the keys both rankings share (ties get average ranks)."""
    from scipy.stats import spearmanr

    keys = sorted(set(a) & set(b))
    out: dict[str, Any] = {"n": len(keys), "rho": None, "p_value": None}
    if len(keys) < 3:
        out["note"] = "fewer than 3 subspaces in common"
        return out
    x, y = [a[k] for k in keys], [b[k] for k in keys]
    if len(set(x)) < 2 or len(set(y)) < 2:
        out["note"] = "one ranking is constant"
        return out
    res = spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    out["rho"] = None if math.isnan(rho) else rho
    out["p_value"] = None if math.isnan(p) else p
    return out


def region_scores_for_subspaces(bank: Any, regions: Mapping[str, Mapping[str, float]], labels: Sequence[str] | None = None) -> dict[str, float]:
    """Subspace id -> its region's pixel-attribution score (``abs_importance`` or ``ratio``)."""
    out = {}
    for sub in bank.subspaces:
        part = subspace_region(sub, labels)
        if part is None or part not in regions:
            continue
        entry = regions[part]
        out[sub.id] = float(entry["abs_importance"] if "abs_importance" in entry else entry["ratio"])
    return out




def compare(
    bank: Any,
    walk: Mapping[str, float] | None,
    latent: Mapping[str, float] | None,
    region_by_method: Mapping[str, Mapping[str, Mapping[str, float]]],
    labels: Sequence[str] | None = None,
    pixel_method: str | None = None,
    latent_slope: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Rank correlations and a plain-language statement.

    walk / latent: subspace id -> score (larger = stronger); latent_slope:
    |first-order slope estimate| per subspace (optional). region_by_method:
    method -> region -> {ratio, ...} or {abs_importance, ...}. The headline
    pixel method is ``pixel_method`` or, by preference, feature_ablation, then
    the first map method.
    """
    walk, latent = dict(walk or {}), dict(latent or {})
    region_of = {sub.id: subspace_region(sub, labels) for sub in bank.subspaces}
    methods = [m for m in region_by_method if region_by_method[m]]
    if pixel_method is None:
        pixel_method = "feature_ablation" if "feature_ablation" in methods else (methods[0] if methods else None)
    region_rankings = {m: region_scores_for_subspaces(bank, region_by_method[m], labels) for m in methods}
    region = region_rankings.get(pixel_method, {}) if pixel_method else {}

    result: dict[str, Any] = {
        "pixel_method": pixel_method,
        "subspace_regions": region_of,
        "walk_vs_latent": spearman(walk, latent),
        "walk_vs_latent_slope": spearman(walk, dict(latent_slope or {})),
        "walk_vs_region": spearman(walk, region),
        "latent_vs_region": spearman(latent, region),
        "walk_vs_region_by_method": {m: spearman(walk, r) for m, r in region_rankings.items()},
    }
    result["statement"] = statement(bank, walk, latent, region_by_method.get(pixel_method, {}) if pixel_method else {}, result, labels)
    return result


def statement(bank: Any, walk: Mapping[str, float], latent: Mapping[str, float], regions: Mapping[str, Mapping[str, float]], result: Mapping[str, Any], labels: Sequence[str] | None = None) -> str:
    """Where the three views agree, and what pixel maps cannot show."""
    parts: list[str] = []
    wl, wr = result["walk_vs_latent"], result["walk_vs_region"]
    if wl["rho"] is not None:
        parts.append(f"Walks and latent attribution {agreement_word(wl['rho'])} on the ranking of subspaces (Spearman {wl['rho']:.2f}, {wl['n']} subspaces).")
    if wr["rho"] is not None:
        parts.append(
            f"Walks and {result['pixel_method']} pixel attribution, read through each subspace's face region, "
            f"{agreement_word(wr['rho'])} (Spearman {wr['rho']:.2f}, {wr['n']} subspaces)."
        )
    if walk:
        top = max(walk, key=lambda k: walk[k])
        sub = next((s for s in bank.subspaces if s.id == top), None)
        part = subspace_region(sub, labels) if sub is not None else None
        name = getattr(sub, "name", top)
        if latent:
            ltop = max(latent, key=lambda k: latent[k])
            if ltop == top:
                parts.append(f"Both walks and latent attribution put {name} first.")
            else:
                lname = next((s.name for s in bank.subspaces if s.id == ltop), ltop)
                parts.append(f"The walks put {name} first; latent attribution puts {lname} first.")
        if part and regions:
            key = "abs_importance" if "abs_importance" in next(iter(regions.values())) else "ratio"
            ptop = max(regions, key=lambda r: regions[r][key])
            if ptop == part:
                parts.append(f"Pixel attribution also points most at the {part}, the region {name} acts on.")
            else:
                parts.append(f"Pixel attribution points most at the {ptop}, not at the {part} where {name} acts.")
            same_region = [s.name for s in bank.subspaces if s.id != top and subspace_region(s, labels) == part]
            if sub is not None and is_colour_subspace(sub):
                area = regions.get(part, {}).get("area_share")
                where = f" (about {area:.0%} of the image)" if area else ""
                parts.append(
                    f"{name} changes colour, not shape: pixel methods can only spread its attribution over the whole "
                    f"{part}{where}; they show where the classifier looks, not that tone is what it reads."
                )
            if same_region:
                parts.append(
                    f"Pixel maps cannot separate {name} from {', '.join(same_region)}, which act on the same region; the walks can."
                )
    elif not parts:
        parts.append("No walk results to compare with.")
    return " ".join(parts)
