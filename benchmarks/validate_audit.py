"""Grade the audit against the FaceLab oracle, for every planted classifier.

For each classifier in examples/facelab/: the oracle's per-factor effects
(interventions in the renderer, ground truth) beside the audit's driver
ranking on the demo generator and bank. Each bank subspace names the factor
it should move (`truth_factor` in recipes/facelab.toml, validation only).

    PYTHONPATH=. python benchmarks/validate_audit.py --n 32 --out docs/validation.md

Checks printed per classifier: the audit's top driver moves the oracle's top
factor; which subspaces are significant; Spearman correlation between the
audit's |slope| and the oracle's mean |change| of the matched factors.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from iceaudit.audit.classifier import load_card, load_classifier  # noqa: E402
from iceaudit.audit.runner import AuditSettings, run_audit  # noqa: E402
from iceaudit.bank.format import load_bank  # noqa: E402
from iceaudit.bank.recipe import load_recipe  # noqa: E402
from iceaudit.facelab.oracle import oracle_many  # noqa: E402
from iceaudit.stylegan2.loaders import load_generator  # noqa: E402

PLANTED = ("smiling", "smiling_skin_shortcut", "eyeglasses_background_shortcut", "random_init")


def truth_map() -> dict[str, str]:
    return {s.id: s.truth_factor for s in load_recipe("facelab").subspaces if s.truth_factor}


def grade(name: str, drivers: list, oracle_rows: list, truth: dict[str, str]) -> dict:
    effect = {r.factor: r.mean_abs_delta for r in oracle_rows}
    significant_factors = [r.factor for r in oracle_rows if r.significant()]
    oracle_top = max(oracle_rows, key=lambda r: r.mean_abs_delta)
    top = drivers[0]
    matched = [(abs(d["slope"]), effect[truth[d["subspace"]]]) for d in drivers if d["subspace"] in truth]
    rho = spearmanr(*zip(*matched)).statistic if len(matched) > 2 else float("nan")
    return {
        "classifier": name,
        "oracle_top": oracle_top.factor,
        "oracle_top_effect": oracle_top.mean_abs_delta,
        "oracle_significant": significant_factors,
        "audit_top": top["subspace"],
        "audit_top_factor": truth.get(top["subspace"]),
        "audit_significant": [d["subspace"] for d in drivers if d["significant"]],
        "audit_beyond_random": [d["subspace"] for d in drivers if d["significant"] and d.get("beyond_random")],
        "top_matches": truth.get(top["subspace"]) == oracle_top.factor,
        "spearman": float(rho),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="faces per audit")
    ap.add_argument("--oracle-n", type=int, default=256, help="faces per oracle factor")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="markdown file to write (docs/validation.md)")
    ap.add_argument("--classifiers", default=",".join(PLANTED))
    ap.add_argument("--generator", default="demo")
    ap.add_argument("--bank", type=Path, default=ROOT / "subspace_bank" / "demo")
    args = ap.parse_args()
    torch.set_num_threads(2)
    names = [c for c in args.classifiers.split(",") if c]
    G = load_generator(args.generator)
    bank = load_bank(args.bank)
    truth = truth_map()
    clfs = {c: load_classifier(ROOT / "examples/facelab" / f"{c}.pt", load_card(ROOT / "examples/facelab" / f"{c}.toml"))
            for c in names}
    t0 = time.time()
    tables = oracle_many({c: clf.decision_score for c, clf in clfs.items()}, n=args.oracle_n, seed=args.seed)
    print(f"oracle: {time.time() - t0:.0f}s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in names:
            t0 = time.time()
            result = run_audit(clfs[c], G, bank, AuditSettings.of(n=args.n, seed=args.seed, device="cpu",
                                                                out=str(Path(tmp) / c)))
            drivers = [asdict(d) for d in result.drivers]
            g = grade(c, drivers, tables[c], truth)
            g["seconds"] = time.time() - t0
            rows.append((g, drivers, tables[c]))
            print(g)
    if args.out:
        write_markdown(rows, args)


def write_markdown(rows, args) -> None:
    lines = [
        "# Does the audit tell the truth? (FaceLab)",
        "",
        "Each planted classifier audited on the demo generator and bank, graded against the",
        "FaceLab oracle (one true factor moved at a time in the renderer, docs/facelab.md).",
        "Each subspace is matched to the factor its recipe says it moves (`truth_factor`).",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/validate_audit.py --n {args.n} "
        f"--oracle-n {args.oracle_n} --seed {args.seed} --out docs/validation.md`",
        "",
        "| classifier | oracle top factor (mean abs change) | audit top driver (its factor) | top matches | "
        "audit significant (effect) | of those, beyond random | Spearman(audit abs slope, oracle abs change) | "
        "audit time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g, _, _ in rows:
        lines.append(
            f"| {g['classifier']} | {g['oracle_top']} ({g['oracle_top_effect']:.3f}) | {g['audit_top']} "
            f"({g['audit_top_factor']}) | {'yes' if g['top_matches'] else 'NO'} | "
            f"{', '.join(g['audit_significant']) or 'none'} | {', '.join(g['audit_beyond_random']) or 'none'} | "
            f"{g['spearman']:.2f} | {g['seconds']:.0f} s |")
    for g, drivers, table in rows:
        lines += ["", f"## {g['classifier']}", "", "| rank | subspace | slope / unit | 95% CI | flip rate | significant "
                  "(effect) | p effect (Holm) | beyond random | p vs random (Holm) | mixed sign |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for d in drivers:
            lines.append(f"| {d['rank']} | {d['subspace']} | {d['slope']:+.4f} | {d['ci_low']:+.4f} .. {d['ci_high']:+.4f} "
                         f"| {100 * d['flip_rate']:.0f}% | {'yes' if d['significant'] else 'no'} "
                         f"| {d['p_effect_adjusted']:.3g} | {'yes' if d['beyond_random'] else 'no'} "
                         f"| {d['p_adjusted']:.3g} | {'yes' if d['mixed_sign'] else 'no'} |")
        top = sorted(table, key=lambda r: -r.mean_abs_delta)[:6]
        lines += ["", "Oracle, strongest factors (mean change of the score for a quarter-range step):", "",
                  "| factor | mean change | 95% CI | mean abs change |", "|---|---|---|---|"]
        for r in top:
            lines.append(f"| {r.factor} | {r.mean_delta:+.4f} | {r.ci_low:+.4f} .. {r.ci_high:+.4f} | {r.mean_abs_delta:.4f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
