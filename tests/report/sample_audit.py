"""A made-up audit directory for tests, benchmarks and screenshots of the report.

NOT an audit result: the faces are cartoons drawn with PIL and the scores come
from a toy formula (a smile detector with a planted skin-tone shortcut). The
directory follows the summary.json contract (`iceaudit.record`) so that the
report and the gate can be built and tested while the real audit is written.
``provenance.synthetic_fixture`` is true, and the report says so on page 1.

    python tests/report/sample_audit.py OUT_DIR [--faces 24] [--no-baselines]
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from PIL import Image

from iceaudit.record import Driver, compose_verdict, record_from_json, write_record
from iceaudit.record.codec import to_json

# id, name, tags, unit, score effect per unit (probability-scale logit slope)
SUBSPACES: list[tuple[str, str, list[str], str, float]] = [
    ("smile", "smile", ["expression"], "1 SD of mouth-corner lift", 1.40),
    ("skin_tone", "skin tone", ["protected", "colour"], "1 SD of mean skin luminance", -0.55),
    ("mouth_open", "mouth opening", ["expression"], "1 SD of lip gap", 0.35),
    ("glasses", "glasses", ["accessory"], "1 SD of rim darkness", 0.10),
    ("eye_size", "eye size", ["geometry"], "1 SD of eye height", 0.04),
    ("eye_colour", "eye colour", ["colour"], "1 SD of iris hue", 0.02),
    ("brow_shape", "eyebrow angle", ["geometry"], "1 SD of brow slope", 0.05),
    ("hair_colour", "hair colour", ["colour"], "1 SD of hair luminance", 0.03),
    ("hair_length", "hair length", ["geometry"], "1 SD of hair extent", 0.02),
    ("face_width", "face width", ["geometry"], "1 SD of jaw width", 0.03),
    ("beard", "beard", ["texture"], "1 SD of beard coverage", 0.04),
    ("lip_colour", "lip colour", ["colour"], "1 SD of lip redness", 0.02),
    ("background", "background colour", ["colour", "context"], "1 SD of background hue", 0.01),
    ("age", "apparent age", ["protected", "texture"], "1 SD of wrinkle contrast", 0.03),
]
ALPHAS = [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
STRIP_ALPHAS = [-2.0, -1.0, 0.0, 1.0, 2.0]
THRESHOLD = 0.5
N_NULL = 4
RES = 64


def _draw_face(p: dict[str, float]) -> "Image.Image":
    """A 64x64 cartoon face from named parameters (each roughly in [-3, 3])."""
    from PIL import Image, ImageDraw

    def clip(v: float) -> int:
        return int(max(0, min(255, v)))

    s = 4  # draw at 4x, then downsample: smooth edges
    R = RES * s
    bg = (clip(150 + 30 * p["background"]), clip(170 - 20 * p["background"]), clip(200 - 10 * p["background"]))
    img = Image.new("RGB", (R, R), bg)
    d = ImageDraw.Draw(img)
    tone = 200 + 28 * p["skin_tone"]
    skin = (clip(tone), clip(tone * 0.78), clip(tone * 0.64))
    hair = (clip(80 + 40 * p["hair_colour"]), clip(55 + 30 * p["hair_colour"]), clip(30 + 20 * p["hair_colour"]))
    cx, cy = R / 2, R * 0.55
    fw = R * (0.30 + 0.025 * p["face_width"])
    fh = R * 0.36
    hl = R * (0.12 + 0.03 * p["hair_length"])
    d.ellipse([cx - fw - 8, cy - fh - 14, cx + fw + 8, cy + fh * 0.2 + hl], fill=hair)
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=skin)
    if p["beard"] > 0.6:
        shade = (clip(hair[0] * 0.8), clip(hair[1] * 0.8), clip(hair[2] * 0.8))
        d.chord([cx - fw * 0.9, cy + fh * 0.1, cx + fw * 0.9, cy + fh], 20, 160, fill=shade)
    if p["age"] > 0:
        for k in range(3):
            y = cy - fh * 0.62 + k * 7
            d.line([cx - fw * 0.45, y, cx + fw * 0.45, y], fill=(clip(tone * 0.6),) * 3, width=max(1, int(2 + p["age"])))
    ey = cy - fh * 0.15
    er = R * (0.045 + 0.008 * p["eye_size"])
    iris = (clip(70 + 40 * p["eye_colour"]), clip(90 - 10 * p["eye_colour"]), clip(120 - 35 * p["eye_colour"]))
    for ex in (cx - fw * 0.42, cx + fw * 0.42):
        d.ellipse([ex - er * 1.4, ey - er, ex + er * 1.4, ey + er], fill=(250, 250, 250))
        d.ellipse([ex - er * 0.8, ey - er * 0.8, ex + er * 0.8, ey + er * 0.8], fill=iris)
        tilt = 6 * p["brow_shape"]
        side = -1 if ex < cx else 1
        d.line([ex - er * 1.6, ey - er * 2.2 - side * tilt, ex + er * 1.6, ey - er * 2.2 + side * tilt], fill=hair, width=8)
        if p["glasses"] > -0.8:
            w = max(2, int(4 + 3 * p["glasses"]))
            d.ellipse([ex - er * 2.3, ey - er * 1.9, ex + er * 2.3, ey + er * 1.9], outline=(20, 20, 20), width=w)
    d.line([cx, ey + er, cx - 6, cy + fh * 0.22], fill=(clip(tone * 0.7),) * 3, width=5)
    my = cy + fh * 0.48
    mw = fw * 0.48
    curve = 18 * p["smile"]
    gap = 4 + 5 * max(p["mouth_open"] + 1, 0)
    lip = (clip(170 + 30 * p["lip_colour"]), clip(70 - 10 * p["lip_colour"]), clip(80 - 10 * p["lip_colour"]))
    pts_top = [(cx + mw * t, my + curve * (1 - t * t) - curve) for t in np.linspace(-1, 1, 13)]
    pts_bot = [(x, y + gap * (1 - ((x - cx) / mw) ** 2)) for x, y in reversed(pts_top)]
    d.polygon(pts_top + pts_bot, fill=lip)
    return img.resize((RES, RES), Image.LANCZOS)


def _strip(frames: list["Image.Image"]) -> "Image.Image":
    from PIL import Image

    out = Image.new("RGB", (RES * len(frames), RES))
    for i, f in enumerate(frames):
        out.paste(f, (RES * i, 0))
    return out


def _diff(a: "Image.Image", b: "Image.Image") -> "Image.Image":
    from PIL import Image

    x = np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean(axis=2)
    x = x / max(float(x.max()), 1e-6)
    heat = np.stack([255 * x, 80 * x, 255 * (1 - x) * 0.3], axis=2).astype(np.uint8)
    return Image.fromarray(heat)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _per_face_slopes(scores: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Least-squares slope of score vs alpha for each face (rows)."""
    a = alphas - alphas.mean()
    return (scores - scores.mean(axis=1, keepdims=True)) @ a / (a @ a)


def _spearman_rows(scores: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    from scipy.stats import spearmanr

    out = []
    for row in scores:
        rho = spearmanr(alphas, row).statistic if np.ptp(row) > 0 else 0.0
        out.append(0.0 if not np.isfinite(rho) else rho)
    return np.asarray(out)


def write_sample_audit(out: str | Path, n_faces: int = 24, seed: int = 0, baselines: bool = True,
                       honest: bool = False, images: bool = True,
                       strip_faces: int = 4, strip_subspaces: int = 6, n_counterfactuals: int = 8) -> Path:
    """Write a synthetic audit directory (summary.json, results.parquet, images/).

    ``honest``: no skin-tone shortcut (the skin-tone effect is as small as the
    nuisance subspaces'). ``images=False`` skips drawing (summary and parquet
    only; walk_strips and counterfactual images are then absent).
    """
    import pandas as pd
    from statsmodels.stats.multitest import multipletests

    out = Path(out)
    (out / "images" / "walks").mkdir(parents=True, exist_ok=True)
    (out / "images" / "counterfactuals").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    alphas = np.asarray(ALPHAS)
    ids = [s[0] for s in SUBSPACES]
    base_logit = rng.normal(0.0, 1.3, n_faces)
    face_params = rng.normal(0.0, 0.8, (n_faces, len(SUBSPACES)))

    rows: list[pd.DataFrame] = []
    scores: dict[str, np.ndarray] = {}
    null_slopes: dict[str, np.ndarray] = {}
    for j, (sid, _, _, _, beta) in enumerate(SUBSPACES):
        if honest and sid == "skin_tone":
            beta = 0.02
        face_beta = beta * (1 + 0.35 * rng.standard_normal(n_faces))
        s = _sigmoid(base_logit[:, None] + face_beta[:, None] * alphas[None, :])
        s = np.clip(s + rng.normal(0, 0.004, s.shape), 0, 1)
        scores[sid] = s
        rows.append(_long(s, sid, alphas))
        ns = []
        ends = np.asarray([alphas[0], alphas[-1]])  # like the audit: null walks go to the range's two ends only
        for k in range(N_NULL):
            nb = rng.normal(0, 0.04) * (1 + 0.3 * rng.standard_normal(n_faces))
            sn = np.clip(_sigmoid(base_logit[:, None] + nb[:, None] * ends[None, :]) + rng.normal(0, 0.004, (n_faces, 2)), 0, 1)
            rows.append(_long(sn, f"null:{sid}:{k}", ends))
            ns.append(_per_face_slopes(sn, ends).mean())
        null_slopes[sid] = np.abs(np.asarray(ns))
    results = pd.concat(rows, ignore_index=True)
    results.to_parquet(out / "results.parquet", index=False)

    # Statistics (same definitions as the summary contract; toy p-values).
    recs = []
    for sid, name, tags, _, _ in SUBSPACES:
        s = scores[sid]
        fs = _per_face_slopes(s, alphas)
        boot = rng.choice(fs, size=(2000, len(fs)), replace=True).mean(axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        decisions = s > THRESHOLD
        flip = float(np.mean(decisions.any(axis=1) & ~decisions.all(axis=1)))
        zero = s[:, list(alphas).index(0.0)][:, None]
        floor = float(np.quantile(null_slopes[sid], 0.95))
        se = fs.std(ddof=1) / math.sqrt(len(fs))
        z = (abs(fs.mean()) - floor) / max(se, 1e-9)
        p = float(0.5 * math.erfc(z / math.sqrt(2)))
        recs.append(dict(subspace=sid, name=name, tags=tags, slope=float(fs.mean()), ci_low=float(lo), ci_high=float(hi),
                         mean_abs_change=float(np.abs(s - zero).mean()), flip_rate=flip,
                         monotonicity=float(_spearman_rows(s, alphas).mean()), heterogeneity=float(fs.std(ddof=1)),
                         null_abs_slope=floor, p_value=p))
    p_adj = multipletests([r["p_value"] for r in recs], method="holm")[1]
    for r, pa in zip(recs, p_adj):
        r["p_adjusted"] = float(pa)
        r["significant"] = bool(pa < 0.05)
    recs.sort(key=lambda r: -abs(r["slope"]))
    drivers = [Driver(rank=i + 1, **r) for i, r in enumerate(recs)]
    protected = [sid for sid, _, tags, _, _ in SUBSPACES if "protected" in tags]

    # Images: walk strips for the strongest subspaces (and every protected one).
    def params(i: int, sid: str | None = None, alpha: float = 0.0) -> dict[str, float]:
        p = {k: float(face_params[i, j]) for j, k in enumerate(ids)}
        if sid is not None:
            p[sid] += alpha * 1.2
        return p

    shown = [d.subspace for d in drivers[:strip_subspaces]]
    shown += [sid for sid in protected if sid not in shown]
    strip_samples = list(range(min(strip_faces, n_faces)))
    walk_strips: dict[str, list[dict[str, Any]]] = {}
    for sid in shown if images else []:
        entries = []
        for i in strip_samples:
            frames = [_draw_face(params(i, sid, a)) for a in STRIP_ALPHAS]
            rel = f"images/walks/{sid}/sample_{i:04d}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            _strip(frames).save(out / rel)
            entries.append({"sample": i, "image": rel, "alphas": STRIP_ALPHAS})
        walk_strips[sid] = entries

    # Counterfactuals: per face, the smallest step (any subspace) that flips it.
    per_subspace = {}
    flips: dict[int, tuple[float, str, float]] = {}
    for sid in ids:
        s = scores[sid]
        d0 = s[:, list(alphas).index(0.0)] > THRESHOLD
        steps = []
        for i in range(n_faces):
            cand = [a for a in alphas if (s[i, list(alphas).index(a)] > THRESHOLD) != d0[i]]
            if cand:
                a = min(cand, key=abs)
                steps.append(abs(a))
                if i not in flips or abs(a) < abs(flips[i][0]):
                    flips[i] = (float(a), sid, float(s[i, list(alphas).index(a)]))
        per_subspace[sid] = {"success_rate": len(steps) / n_faces,
                             "median_step": float(np.median(steps)) if steps else None}
    best = []
    for i in sorted(flips)[:n_counterfactuals] if images else []:
        a, sid, after = flips[i]
        orig, cf = _draw_face(params(i)), _draw_face(params(i, sid, a))
        stem = f"images/counterfactuals/sample_{i:04d}"
        orig.save(out / f"{stem}_original.png")
        cf.save(out / f"{stem}_{sid}.png")
        _diff(orig, cf).save(out / f"{stem}_diff.png")
        before = float(scores[sid][i, list(alphas).index(0.0)])
        best.append({"sample": i, "subspace": sid, "step": a, "score_before": before, "score_after": after,
                     "original": f"{stem}_original.png", "counterfactual": f"{stem}_{sid}.png", "diff": f"{stem}_diff.png"})

    rng_v = np.random.default_rng(seed + 1)
    own = {sid: {"criterion": f"{name} criterion", "effect_per_unit": float(1 + rng_v.normal(0, 0.08)), "expected": 1.0}
           for sid, name, *_ in SUBSPACES}
    own["glasses"]["effect_per_unit"] = 0.62  # one walk that under-delivers, so the table shows a failure
    for v in own.values():
        v["ok"] = bool(abs(v["effect_per_unit"] - v["expected"]) <= 0.25)
    leakage = {a: {b: float(abs(rng_v.normal(0, 0.04))) for b in ids if b != a} for a in ids}
    leakage["smile"]["mouth_open"] = 0.41
    leakage["skin_tone"]["lip_colour"] = 0.22

    summary: dict[str, Any] = {
        "classifier": {"name": "toy smile detector (synthetic fixture)", "path": "fixture://toy", "sha256": "0" * 64,
                       "positive_class": "smiling", "threshold": THRESHOLD},
        "generator": {"name": "cartoon faces (synthetic fixture)", "fingerprint": "f" * 64, "resolution": RES},
        "bank": {"name": "fixture-bank", "path": "fixture://bank",
                 "subspaces": [{"id": sid, "name": name, "tags": tags, "unit": unit, "step_range": [-2.0, 2.0],
                                "description": f"changes {name} and little else"} for sid, name, tags, unit, _ in SUBSPACES]},
        "settings": {"n_samples": n_faces, "seed": seed, "psi": 1.0, "alphas": ALPHAS, "n_null": N_NULL, "device": "cpu"},
        "verdict": compose_verdict(drivers, units={sid: unit for sid, _, _, unit, _ in SUBSPACES}),
        "drivers": to_json(drivers),
        "walk_strips": walk_strips,
        "counterfactuals": {"per_subspace": per_subspace, "best": best},
        "fairness": {"protected": protected, "findings": []},
        "validity": {
            "null_floor": {"n_directions": N_NULL * len(ids), "quantile": 0.975,
                           "abs_slope": float(np.quantile(np.concatenate(list(null_slopes.values())), 0.975))},
            "own_criterion": own,
            "leakage": leakage,
            "sanity": {"randomised_classifier": {"n_significant": 0, "max_abs_slope": 0.004, "passed": True,
                                                 "note": "classifier weights re-initialised; no subspace significant"}},
        },
        "baselines": _sample_baselines(out, drivers, rng_v, n_faces) if baselines and images else {},
        "provenance": {
            "iceaudit_version": "0.1.0", "torch": "n/a (fixture)", "python": platform.python_version(),
            "platform": platform.platform(), "command": f"python tests/report/sample_audit.py {out}",
            "seeds": {"faces": seed, "bootstrap": seed, "null_directions": seed},
            "hashes": {"classifier": "0" * 64, "generator": "f" * 64, "bank": "b" * 64},
            "created": "2026-01-01T00:00:00Z", "synthetic_fixture": True,
        },
    }
    summary["schema_version"] = 1
    write_record(record_from_json(summary, "sample audit"), out / "summary.json")  # through the one reader
    return out


def _long(s: np.ndarray, sid: str, alphas: np.ndarray) -> "pd.DataFrame":
    import pandas as pd

    n = s.shape[0]
    return pd.DataFrame({"sample": np.repeat(np.arange(n), len(alphas)), "subspace": sid,
                         "alpha": np.tile(alphas, n), "score": s.reshape(-1)})


# The face parser's part names (iceaudit.audit.baselines: ``labels``) and each part's share of the image.
LABELS = ["background", "skin", "hair", "brows", "eyes", "nose", "mouth", "glasses", "beard"]
AREA = [0.35, 0.30, 0.18, 0.02, 0.03, 0.03, 0.03, 0.02, 0.04]
SUBSPACE_REGION = {"smile": "mouth", "skin_tone": "skin", "mouth_open": "mouth", "glasses": "glasses", "eye_size": "eyes",
                   "eye_colour": "eyes", "brow_shape": "brows", "hair_colour": "hair", "hair_length": "hair",
                   "face_width": "skin", "beard": "beard", "lip_colour": "mouth", "background": "background",
                   "age": "skin"}


def _heatmap(face: np.ndarray, heat: np.ndarray, path: Path, title: str) -> None:
    """Mean map over the mean face, drawn as iceaudit.audit.baselines.save_heatmap draws it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2.4, 2.6), dpi=100)
    ax.imshow(face)
    ax.imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _rho(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    from scipy.stats import spearmanr

    keys = sorted(set(a) & set(b))
    res = spearmanr([a[k] for k in keys], [b[k] for k in keys])
    return {"n": len(keys), "rho": float(res.statistic), "p_value": float(res.pvalue)}


def _sample_baselines(out: Path, drivers: list[Driver], rng: np.random.Generator, n_faces: int) -> dict[str, Any]:
    """``summary["baselines"]`` in the shape `iceaudit.audit.baselines.run_baselines` writes (made-up numbers).

    tests/report/test_report_baselines.py checks that the keys match the real
    function's output recorded under tests/data/report_baselines/.
    """
    from PIL import Image

    area = dict(zip(LABELS, AREA))
    yy, xx = np.mgrid[0:RES, 0:RES] / RES
    mean_face = np.asarray(_draw_face({k[0]: 0.0 for k in SUBSPACES} | {"glasses": -1.0}), np.float32) / 255
    pixel: dict[str, Any] = {}
    heats: dict[str, np.ndarray] = {}
    # method, mass share per part (mouth and skin, as a smile detector with a skin-tone shortcut would give), sharpness
    looks = {"saliency": ([0.22, 0.28, 0.08, 0.03, 0.06, 0.04, 0.25, 0.02, 0.02], 0.6),
             "input_x_gradient": ([0.15, 0.36, 0.07, 0.02, 0.04, 0.04, 0.28, 0.02, 0.02], 0.8),
             "ig_blur": ([0.10, 0.38, 0.05, 0.02, 0.04, 0.04, 0.33, 0.02, 0.02], 1.0)}
    for mid, (mass, sharp) in looks.items():
        mass = np.asarray(mass) * (1 + 0.1 * rng.random(len(LABELS)))
        mass = mass / mass.sum()
        regions = {part: {"mass_share": float(m), "area_share": area[part], "ratio": float(m / area[part])}
                   for part, m in zip(LABELS, mass)}
        mouth = np.exp(-((xx - 0.5) ** 2 / 0.02 + (yy - 0.78) ** 2 / 0.004) * sharp)
        skin = 0.45 * np.exp(-((xx - 0.5) ** 2 / 0.06 + (yy - 0.55) ** 2 / 0.08))
        heat = mouth + skin + 0.08 * rng.random((RES, RES))
        rel = f"figures/baseline_{mid}.png"
        heats[mid] = heat / heat.max()
        _heatmap(mean_face, heats[mid], out / rel, mid)
        seconds = float(rng.uniform(0.02, 0.4)) * n_faces
        cheap = mid != "ig_blur"
        pixel[mid] = {"status": "ok", "seconds": seconds, "seconds_per_face": seconds / n_faces, "regions": regions,
                      "region_ranking": sorted(regions, key=lambda k: -regions[k]["ratio"]), "map": rel,
                      "quality": {"infidelity": float(rng.uniform(0.01, 0.1)),
                                  "sensitivity_max": float(rng.uniform(0.05, 0.3)) if cheap else None,
                                  "sensitivity_max_relative": float(rng.uniform(0.02, 0.2)) if cheap else None}}
        if not cheap:
            pixel[mid]["quality"]["sensitivity_note"] = f"not computed for {mid}: it re-runs the method 8 times"
    drop = np.asarray([0.01, 0.09, 0.01, 0.005, 0.01, 0.005, 0.16, 0.003, 0.004]) * (1 + 0.1 * rng.random(len(LABELS)))
    fa = {part: {"importance": float(d), "abs_importance": float(d), "share": float(d / drop.sum()), "area_share": area[part]}
          for part, d in zip(LABELS, drop)}
    heat = (drop[6] * np.exp(-((xx - 0.5) ** 2 / 0.03 + (yy - 0.78) ** 2 / 0.006))
            + drop[1] * np.exp(-((xx - 0.5) ** 2 / 0.06 + (yy - 0.55) ** 2 / 0.08)))
    heats["feature_ablation"] = heat / heat.max()
    _heatmap(mean_face, heats["feature_ablation"], out / "figures/baseline_feature_ablation.png", "feature_ablation")
    pixel["feature_ablation"] = {"status": "ok", "seconds": 0.05 * n_faces, "seconds_per_face": 0.05, "regions": fa,
                                 "region_ranking": sorted(fa, key=lambda k: -fa[k]["abs_importance"]),
                                 "map": "figures/baseline_feature_ablation.png",
                                 "quality": {"infidelity": float(rng.uniform(0.01, 0.1)), "sensitivity_max": None,
                                             "sensitivity_max_relative": None,
                                             "sensitivity_note": "not computed for feature_ablation: it re-runs the method 8 times"}}
    np.savez_compressed(out / "figures" / "baseline_maps.npz", **heats)  # mean maps [R, R], scaled to max 1
    from iceaudit.audit.pixel_attribution import torchscript_gradcam_reason

    pixel["gradcam"] = {"status": "skipped", "reason": torchscript_gradcam_reason("features.3")}

    walk = {d.subspace: abs(d.slope) for d in drivers}
    subs = {}
    for d in drivers:
        a = abs(d.slope) * (0.25 + 0.05 * rng.standard_normal())
        subs[d.subspace] = {"attribution": a * np.sign(d.slope), "abs_attribution": abs(a), "share": 0.0,
                            "covariant_attribution": abs(a) * 1.1, "slope_estimate": d.slope * (1 + 0.15 * rng.standard_normal()),
                            "abs_slope_estimate": 0.0, "dims_in_s": int(rng.integers(1, 12))}
    total = sum(v["abs_attribution"] for v in subs.values())
    for v in subs.values():
        v["attribution"] = float(v["attribution"])
        v["share"] = v["abs_attribution"] / total
        v["abs_slope_estimate"] = abs(v["slope_estimate"])
    latent = {"baseline": "mean styles of the sampled faces", "n_steps": 8, "n_faces": n_faces, "completeness_gap": 0.03,
              "subspaces": subs, "ranking": sorted(subs, key=lambda k: -subs[k]["abs_attribution"]),
              "ranking_by_slope_estimate": sorted(subs, key=lambda k: -subs[k]["abs_slope_estimate"]),
              "status": "ok", "seconds": 0.2 * n_faces, "seconds_per_face": 0.2}

    def pick(channel: str, direction: str, effect: float, share: float) -> dict[str, Any]:
        layer, index = channel.split(":")
        return {"channel": channel, "layer": layer, "index": int(index), "position": int(index) + 64,
                "direction": direction, "mean_effect": effect, "estimated_flip_share": share}

    top_pos = [pick("b16.conv1:41", "max", 0.31, 0.45), pick("b8.conv1:7", "min", 0.12, 0.6), pick("b32.conv0:12", "max", 0.09, 0.7)]
    top_neg = [pick("b16.conv1:41", "min", 0.28, 0.5), pick("b8.conv1:7", "max", 0.10, 0.65)]
    matched = {"b16.conv1:41": ("smile", 0.83, 0.71, "mouth"), "b8.conv1:7": ("skin_tone", 0.12, 0.64, "skin"),
               "b32.conv0:12": ("eye_size", 0.04, 0.18, "eyes")}
    channels, unnamed = [], []
    for p in top_pos:
        sid, overlap, cosine, region = matched[p["channel"]]
        explained = max(overlap, cosine) >= 0.5
        entry = {k: p[k] for k in ("channel", "layer", "index", "direction", "mean_effect")}
        entry.update(best_match={"subspace": sid, "latent_overlap": overlap, "image_cosine": cosine},
                     explained_by_bank=explained, region=region, region_votes={region: 0.8, "skin": 0.2} if region != "skin" else {"skin": 1.0})
        channels.append(entry)
        if not explained:
            rel = f"figures/unnamed_{p['layer']}_{p['index']}.png"
            faces = [{k[0]: float(0.5 * rng.standard_normal()) for k in SUBSPACES} | {"glasses": -1.0} for _ in range(3)]
            rows = [_strip([_draw_face(f | {"eye_size": a}) for a in (-2.5, -1.25, 0.0, 1.25, 2.5)]) for f in faces]
            grid = Image.new("RGB", (rows[0].width, RES * len(rows)))
            for i, r in enumerate(rows):
                grid.paste(r, (0, RES * i))
            grid.save(out / rel)
            entry["walk_strip"] = rel  # as run_attfind: the channels list holds the same record
            unnamed.append(entry)
    n_pos = n_faces // 2
    attfind = {"n_faces": n_faces, "n_channels": 2048, "n_evaluated": 64, "threshold": THRESHOLD, "seconds": 1.5 * n_faces,
               "renders": 64 * 2 * n_faces,
               "classes": {"positive": {"n_faces_to_flip": n_faces - n_pos, "top": top_pos, "sufficiency_curve": [0.42, 0.63, 0.71],
                                        "sufficiency": 0.71},
                           "negative": {"n_faces_to_flip": n_pos, "top": top_neg, "sufficiency_curve": [0.5, 0.62],
                                        "sufficiency": 0.62}},
               "channels": channels, "unnamed_drivers": unnamed, "status": "ok", "seconds_per_face": 1.5}

    region_score = {sid: fa[part]["abs_importance"] for sid, part in SUBSPACE_REGION.items() if part in fa}
    latent_abs = {k: v["abs_attribution"] for k, v in subs.items()}
    latent_slope = {k: v["abs_slope_estimate"] for k, v in subs.items()}
    agreement = {
        "pixel_method": "feature_ablation", "subspace_regions": dict(SUBSPACE_REGION),
        "walk_vs_latent": _rho(walk, latent_abs), "walk_vs_latent_slope": _rho(walk, latent_slope),
        "walk_vs_region": _rho(walk, region_score), "latent_vs_region": _rho(latent_abs, region_score),
        "walk_vs_region_by_method": {m: _rho(walk, {sid: pixel[m]["regions"][part]["ratio"]
                                                    for sid, part in SUBSPACE_REGION.items()}) for m in looks}
                                    | {"feature_ablation": _rho(walk, region_score)},
        "statement": "Walks and latent attribution agree on the ranking of subspaces. Both walks and latent attribution "
                     "put smile first. Pixel attribution also points most at the mouth, the region smile acts on. "
                     "skin tone changes colour, not shape: pixel methods can only spread its attribution over the whole "
                     "skin (about 30% of the image); they show where the classifier looks, not that tone is what it reads.",
    }
    return {"schema": 1, "methods": [*pixel, "latent", "attfind"], "threshold": THRESHOLD,
            "options": dict(BASELINE_OPTIONS), "n_faces": n_faces, "resolution": RES, "labels": LABELS,
            "pixel": pixel, "maps_npz": "figures/baseline_maps.npz", "latent": latent, "attfind": attfind, "agreement": agreement}


# iceaudit.audit.baselines.BaselineOptions defaults, as run_baselines records them under "options"
BASELINE_OPTIONS = {"n_steps": 16, "internal_batch_size": 64, "nt_samples": 8, "stdevs": 0.2, "occlusion_window": None,
                    "occlusion_stride": None, "perturbations_per_eval": 16, "batch_faces": 16, "max_faces": None,
                    "quality": True, "quality_faces": 8, "latent_n_steps": 8, "latent_max_faces": 32, "attfind_k": 5,
                    "attfind_screen": 64, "attfind_max_faces": 32, "attfind_batch": 128}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write a synthetic audit directory (test fixture, not a result).")
    ap.add_argument("out")
    ap.add_argument("--faces", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--honest", action="store_true", help="no skin-tone shortcut")
    a = ap.parse_args(argv)
    print(write_sample_audit(a.out, n_faces=a.faces, seed=a.seed, baselines=not a.no_baselines, honest=a.honest))


if __name__ == "__main__":
    main(sys.argv[1:])
