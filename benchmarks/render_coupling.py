"""How much do the bank's measures move when only one true factor moves, in the renderer?

The ground truth for a walk's leakage: render 96 prior faces with one factor 0.1 of its
range below and above (all else fixed; the base value clamped so both fit), and report,
per SD of each measure across the faces, the change of the chosen bank subspaces'
criteria (from the facelab recipe). The ratio to the factor's own subspace is the leakage
per unit a faithful walk would show.

    PYTHONPATH=. python benchmarks/render_coupling.py                        # skin tone: skin_tone, brows, beard
    PYTHONPATH=. python benchmarks/render_coupling.py glasses glasses brows eye_shape eye_openness
"""
from __future__ import annotations

import argparse

import torch

from iceaudit.bank.recipe import load_recipe
from iceaudit.criteria.eyes import load_eyes
from iceaudit.criteria.spec import Measured
from iceaudit.facelab.factors import FACTOR_NAMES, FACTORS, sample_factors
from iceaudit.facelab.render import render


def coupling(factor_name: str, subspaces: list[str], n: int = 96, seed: int = 5, step: float = 0.1) -> dict[str, float]:
    """Change of each subspace's measure (in SDs across the faces) when the factor moves by 2·step of its range."""
    specs = {s.id: s.criterion for s in load_recipe("facelab").subspaces}
    unknown = [s for s in subspaces if s not in specs]
    if unknown:
        raise SystemExit(f"not in the facelab recipe: {', '.join(unknown)} (known: {', '.join(specs)})")
    eyes = load_eyes("facelab", "facelab")
    k = FACTOR_NAMES.index(factor_name)
    factor = FACTORS[k]
    d = step * factor.span
    base = sample_factors(n, seed)
    base[:, k] = base[:, k].clamp(factor.low + d, factor.low + factor.span - d)
    lo, hi = base.clone(), base.clone()
    lo[:, k] -= d
    hi[:, k] += d
    change = {}
    with torch.no_grad():
        images = [render(x, 64).images for x in (base, lo, hi)]
        for sid in subspaces:
            m = Measured(specs[sid], eyes)
            ctx = m.prepare(images[0])
            v0, v_lo, v_hi = (m.value(im, ctx) for im in images)
            change[sid] = float((v_hi - v_lo).mean() / v0.std())
    return change


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("factor", nargs="?", default="skin_tone", choices=FACTOR_NAMES)
    ap.add_argument("subspaces", nargs="*", help="bank subspaces whose measures to read; the first is the factor's own")
    ap.add_argument("--n", type=int, default=96)
    args = ap.parse_args()
    subspaces = args.subspaces or ["skin_tone", "brows", "beard"]
    torch.set_num_threads(2)
    change = coupling(args.factor, subspaces, n=args.n)
    own = subspaces[0]
    print(f"{args.n} renders, {args.factor} moved by 0.2 of its range:")
    for sid, c in change.items():
        print(f"  {sid}: {c:+.3f} SD" + (f"  ({c / change[own]:+.3f} per SD of {own})" if sid != own else ""))


if __name__ == "__main__":
    main()
