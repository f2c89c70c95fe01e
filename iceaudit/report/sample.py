"""A made-up audit directory for tests, benchmarks and screenshots of the report.

NOT an audit result: the faces are cartoons drawn with PIL and the scores come
from a toy formula (a smile detector with a planted skin-tone shortcut). The
directory follows the summary.json contract in `iceaudit.summary` so that the
report and the gate can be built and tested while the real audit is written.
``provenance.synthetic_fixture`` is true, and the report says so on page 1.

    python -m iceaudit.report.sample OUT_DIR [--faces 24] [--no-baselines]
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from iceaudit.summary import Driver, compose_verdict, write_summary

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
        "verdict": compose_verdict([asdict(d) for d in drivers], units={sid: unit for sid, _, _, unit, _ in SUBSPACES}),
        "drivers": drivers,
        "walk_strips": walk_strips,
        "counterfactuals": {"per_subspace": per_subspace, "best": best},
        "fairness": {"protected": protected, "findings": []},
        "validity": {
            "null_floor": {"n_directions": N_NULL * len(ids), "quantile": 0.95,
                           "abs_slope": float(np.quantile(np.concatenate(list(null_slopes.values())), 0.95))},
            "own_criterion": own,
            "leakage": leakage,
            "sanity": {"randomised_classifier": {"n_significant": 0, "max_abs_slope": 0.004, "passed": True,
                                                 "note": "classifier weights re-initialised; no subspace significant"}},
        },
        "baselines": _sample_baselines(out, drivers, rng_v) if baselines and images else {},
        "provenance": {
            "iceaudit_version": "0.1.0", "torch": "n/a (fixture)", "python": platform.python_version(),
            "platform": platform.platform(), "command": f"python -m iceaudit.report.sample {out}",
            "seeds": {"faces": seed, "bootstrap": seed, "null_directions": seed},
            "hashes": {"classifier": "0" * 64, "generator": "f" * 64, "bank": "b" * 64},
            "created": "2026-01-01T00:00:00Z", "synthetic_fixture": True,
        },
    }
    write_summary(summary, out / "summary.json")
    return out


def _long(s: np.ndarray, sid: str, alphas: np.ndarray) -> "pd.DataFrame":
    import pandas as pd

    n = s.shape[0]
    return pd.DataFrame({"sample": np.repeat(np.arange(n), len(alphas)), "subspace": sid,
                         "alpha": np.tile(alphas, n), "score": s.reshape(-1)})


def _sample_baselines(out: Path, drivers: list[Driver], rng: np.random.Generator) -> dict[str, Any]:
    from PIL import Image

    regions = ["skin", "eyes", "brows", "mouth", "nose", "hair", "glasses", "beard", "background"]
    area = np.array([0.30, 0.03, 0.02, 0.03, 0.03, 0.18, 0.02, 0.04, 0.35])
    (out / "images" / "baselines").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:RES, 0:RES] / RES
    methods, shares = [], {}
    for mid, name, sharp in [("integrated_gradients", "Integrated Gradients", 1.0), ("saliency", "Saliency", 0.6),
                             ("feature_ablation", "Feature ablation (face parts)", 1.4)]:
        mouth = np.exp(-((xx - 0.5) ** 2 / 0.02 + (yy - 0.78) ** 2 / 0.004) * sharp)
        skin = 0.35 * np.exp(-((xx - 0.5) ** 2 / 0.06 + (yy - 0.55) ** 2 / 0.08))
        m = mouth + skin + 0.05 * rng.random((RES, RES))
        rel = f"images/baselines/{mid}_mean.png"
        Image.fromarray((255 * m / m.max()).astype(np.uint8)).convert("L").save(out / rel)
        w = np.array([0.30, 0.04, 0.02, 0.50, 0.03, 0.03, 0.02, 0.03, 0.03]) * (1 + 0.2 * rng.random(len(regions)))
        shares[mid] = dict(zip(regions, (w / w.sum()).round(4).tolist()))
        methods.append({"id": mid, "name": name, "mean_map": rel, "infidelity": float(rng.uniform(0.01, 0.1)),
                        "sensitivity_max": float(rng.uniform(0.05, 0.3)), "seconds_per_face": float(rng.uniform(0.05, 2))})
    latent = {d.subspace: float(d.slope * (1 + 0.2 * rng.standard_normal())) for d in drivers}
    return {
        "methods": methods,
        "regions": {"names": regions, "area_share": dict(zip(regions, area.tolist())), "attribution_share": shares},
        "latent_attribution": latent,
        "agreement": {"pairs": [{"a": "walks", "b": "latent attribution", "spearman": 0.91, "n": len(drivers)},
                                {"a": "walks", "b": "region attribution", "spearman": 0.48, "n": 9}],
                      "statement": "Walks and latent attribution agree on smile first and skin tone second. Pixel "
                                   "attribution points at the mouth but spreads the skin-tone effect thinly over the "
                                   "whole face, so it cannot name skin tone as a driver."},
        "unnamed_drivers": [{"channel": "b16.conv0:37", "region": "mouth", "effect": 0.12, "flip_rate": 0.08}],
        "skipped": [{"method": "LayerGradCam", "reason": "TorchScript classifier exposes no module hooks"}],
    }


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
