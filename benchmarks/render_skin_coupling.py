"""How much do the bank's other measures move when only skin tone moves, in the renderer?

The ground truth for a skin-tone walk's leakage: render 96 prior faces with skin tone
0.1 of its range below and above (all else fixed), and report, per SD of each measure
across the faces, the change of the skin-tone criterion and of the brow-area and beard
criteria the bank validates against (their ratio is the leakage per unit a faithful
skin-tone walk would show). Usage: PYTHONPATH=. python benchmarks/render_skin_coupling.py
"""
from __future__ import annotations

import torch

from iceaudit.criteria.eyes import load_eyes
from iceaudit.criteria.spec import Measured
from iceaudit.facelab.factors import FACTOR_NAMES, FACTORS, sample_factors
from iceaudit.facelab.render import render

MEASURES = {
    "skin_tone": {"kind": "region_colour", "regions": ["skin", "nose"], "size": 64, "measure": "luminance"},
    "brows": {"kind": "region_area", "regions": ["brows"], "size": 64},
    "beard": {"kind": "estimator", "model": "facelab-beard"},
}


def main(n: int = 96, seed: int = 5, step: float = 0.1) -> None:
    torch.set_num_threads(2)
    eyes = load_eyes("facelab", "facelab")
    k = FACTOR_NAMES.index("skin_tone")
    factor = FACTORS[k]
    d = step * factor.span
    base = sample_factors(n, seed)
    base[:, k] = base[:, k].clamp(factor.low + d, factor.low + factor.span - d)
    lo, hi = base.clone(), base.clone()
    lo[:, k] -= d
    hi[:, k] += d
    with torch.no_grad():
        images = [render(x, 64).images for x in (base, lo, hi)]
        change = {}
        for name, spec in MEASURES.items():
            m = Measured(spec, eyes)
            ctx = m.prepare(images[0])
            v0, v_lo, v_hi = (m.value(im, ctx) for im in images)
            change[name] = float((v_hi - v_lo).mean() / v0.std())
    print(f"{n} renders, skin tone moved by {2 * step:.1f} of its range:")
    for name, c in change.items():
        print(f"  {name}: {c:+.3f} SD" + (f"  ({c / change['skin_tone']:+.3f} per SD of skin tone)" if name != "skin_tone" else ""))


if __name__ == "__main__":
    main()
