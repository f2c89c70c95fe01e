"""Do concepts learned from labelled seeds recover FaceLab's true factors? (docs/bank.md)

For each true factor that a shipped demo subspace leads, label `--counts` generated faces
(official seeds 1000..) as above / below the median of that factor (read by FaceLab's factor
reader), fit an `svm` concept in W scored by the same reader, and compare it with the shipped
subspace: the factor it moves most, its own effect per unit (SD of the scorer), its effect
on the true factor per unit, held-out separation and whether it passes validation (leakage
onto its shipped twin exempt: it names the same attribute). `--methods ice` fits instead an
`ice` concept from the same scorer alone (no labels; one row per factor).

    PYTHONPATH=. python benchmarks/concept_recovery.py --counts 50,100,200
    PYTHONPATH=. python benchmarks/concept_recovery.py --methods ice
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from iceaudit.bank.concept import ConceptSpec, Examples, add_concept
from iceaudit.bank.format import load_bank
from iceaudit.criteria.eyes import load_eyes
from iceaudit.errors import UserError
from iceaudit.facelab.reader import FactorTruth
from iceaudit.stylegan2.generate import z_from_seeds
from iceaudit.stylegan2.loaders import load_generator

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="50,100,200", help="labelled faces per concept")
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--methods", default="svm", help="svm (from labels) and/or ice (from the scorer alone)")
    ap.add_argument("--out", type=Path, default=None, help="markdown table to write")
    args = ap.parse_args()
    torch.set_num_threads(2)
    counts = [int(c) for c in args.counts.split(",")]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    G = load_generator("demo")
    bank = load_bank(ROOT / "subspace_bank" / "demo")
    truth = FactorTruth()
    eyes = load_eyes(None, None, defaults=bank.meta.get("eyes_spec", {}))
    twins = {s.validation["truth_factor"]: s.id for s in bank.subspaces
             if s.validation.get("truth_factor") in truth.factors}
    seeds = list(range(args.first_seed, args.first_seed + max(counts)))
    with torch.no_grad():
        factors = truth(G.synthesis(G.mapping(z_from_seeds(seeds, G.z_dim), None), noise_mode="const"))
    lines = ["| factor (shipped twin) | method, labelled | lead | own effect / unit (shipped) | true factor / unit (shipped) "
             "| separation | passes | s |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for factor, twin in sorted(twins.items()):
            path = Path(tmp) / f"{factor}.pt"
            try:
                scorer = truth.scorer(factor)
            except UserError:
                continue  # a hue has no scalar score
            torch.jit.trace(scorer, torch.zeros(2, 3, G.img_resolution, G.img_resolution)).save(str(path))
            shipped = bank[twin].validation
            runs = [("svm", n) for n in counts if "svm" in methods] + ([("ice", None)] if "ice" in methods else [])
            for method, n in runs:
                ex = None
                if n is not None:
                    f = factors[factor][:n]
                    ex = Examples(tuple(seeds[:n]), tuple(bool(v) for v in (f > f.median())))
                t0 = time.time()
                _, rep = add_concept(G, bank, ex, ConceptSpec(id=f"my_{factor}", method=method), eyes,
                                     scorer=str(path), truth=truth, truth_factor=factor, leakage_exempt_ids=[twin],
                                     exempt_reason="same attribute", keep_failing=True)
                sep = f"{rep['separation']['accuracy']:.0%}" if "separation" in rep else "–"
                row = (f"| {factor} ({twin}) | {method}, {n or 0} | {rep['truth_lead']} | {rep['own_effect']:.2f} "
                       f"({shipped['own_effect']:.2f}) | {rep['truth'][factor]:.2f} ({shipped['truth'][factor]:.2f}) "
                       f"| {sep} | {'yes' if rep['passed'] else '; '.join(rep['reasons'])} "
                       f"| {time.time() - t0:.1f} |")
                print(row, flush=True)
                lines.append(row)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
