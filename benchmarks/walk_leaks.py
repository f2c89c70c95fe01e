"""Why a walk's slope differs from the oracle's effect of its factor: the parts of its predicted slope.

For one FaceLab classifier and the demo bank, each walk's slope per unit is predicted from every
true factor it moves: the factor's change per unit of the walk (FaceLab's reader, at the audited
faces, between the ends of the walked range) times the oracle's signed mean change of the score
per unit of that factor. The walk's own factor gives one part; every other factor it moves is a
leak. A leak of the opposite sign cancels part of the own effect, one of the same sign adds to it;
either way, dividing the walk's slope by its own factor's movement no longer measures that factor.

    PYTHONPATH=. python benchmarks/walk_leaks.py mouth_dark --seeds 0,1000 --subspaces smile,skin_tone
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_audit import (PLANTED, ROOT, WHITEBOX, classifiers, factor_change_per_unit,  # noqa: E402
                            predicted_parts, truth_map)

from iceaudit.bank.format import load_bank  # noqa: E402
from iceaudit.facelab.oracle import oracle_many  # noqa: E402
from iceaudit.facelab.reader import FactorTruth  # noqa: E402
from iceaudit.stylegan2.loaders import load_generator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("classifier", help="a planted (examples/facelab) or white-box classifier name")
    ap.add_argument("--seeds", default="0", help="face seeds of the audited faces")
    ap.add_argument("--n", type=int, default=16, help="faces per seed (as the audit)")
    ap.add_argument("--oracle-n", type=int, default=128, help="faces per oracle factor (seed 0)")
    ap.add_argument("--subspaces", default="", help="only these subspaces (default: all with a true factor)")
    ap.add_argument("--bank", type=Path, default=ROOT / "subspace_bank" / "demo")
    args = ap.parse_args()
    if args.classifier not in PLANTED + tuple(WHITEBOX):
        sys.exit(f"unknown classifier {args.classifier!r}; one of {', '.join(PLANTED + tuple(WHITEBOX))}")
    G, bank, reader, truth = load_generator("demo"), load_bank(args.bank), FactorTruth(), truth_map()
    wanted = {s for s in args.subspaces.split(",") if s}
    unknown = wanted - {s.id for s in bank.subspaces if s.id in truth}
    if unknown:
        sys.exit(f"no subspace with a true factor named {', '.join(sorted(unknown))} in {args.bank}")
    torch.set_num_threads(2)
    clf = classifiers([args.classifier])[args.classifier]
    rows = {r.factor: r for r in oracle_many({"c": clf.decision_score}, n=args.oracle_n, seed=0)["c"]}
    print("| seed | subspace | own factor: moved per unit -> part | largest leaks: factor moved -> part | "
          "predicted slope |")
    print("|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",") if s.strip()):
        moves = factor_change_per_unit(G, bank, args.n, seed, reader)
        for sid, moved in moves.items():
            own = truth.get(sid)
            if own is None or own not in moved or (wanted and sid not in wanted):
                continue
            parts = predicted_parts(moved, rows)
            leaks = sorted((f for f in parts if f != own), key=lambda f: -abs(parts[f]))[:2]
            print(f"| {seed} | {sid} | {own} {moved[own]:+.3f} -> {parts[own]:+.3f} | "
                  + ", ".join(f"{f} {moved[f]:+.3f} -> {parts[f]:+.3f}" for f in leaks)
                  + f" | {sum(parts.values()):+.3f} |")


if __name__ == "__main__":
    main()
