"""Does a recipe's bank pass validation whatever the discovery faces and however few validation faces?

Builds the recipe once per discovery seed (`[bank] seed`; calibration and validation faces
follow it, seed + 1 and seed + 2), then re-validates every build on its own validation faces
at each face count, and prints one markdown table: per subspace, pass or the reasons, per
seed and count, plus the valid range each build measured.

    PYTHONPATH=. python benchmarks/bank_robustness.py --recipe facelab --seeds 0,10,20 \\
        --faces 16,32,48 --workdir runs/robustness --json runs/robustness/robustness.json

A seed whose bank already exists in the workdir is not rebuilt (delete it to rebuild);
`--from-json` prints the table of an earlier run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from iceaudit.bank.build import build_bank, validate_bank
from iceaudit.bank.format import load_bank
from iceaudit.bank.recipe import load_recipe
from iceaudit.criteria.eyes import load_eyes
from iceaudit.facelab.reader import FactorTruth
from iceaudit.stylegan2.loaders import load_generator


def run(recipe_name: str, seeds: list[int], faces: list[int], workdir: Path) -> dict:
    G = load_generator("demo")
    truth = FactorTruth()
    out: dict = {"recipe": recipe_name, "seeds": seeds, "faces": faces, "builds": {}}
    for seed in seeds:
        folder = workdir / f"seed{seed}"
        recipe = load_recipe(recipe_name)
        recipe.bank["seed"] = seed
        eyes = load_eyes(None, None, defaults=recipe.eyes)
        t0 = time.time()
        if not (folder / "manifest.json").is_file():
            build_bank(G, recipe, eyes, out=folder, cache_dir=workdir / "jtj-cache", truth=truth, keep_failing=True)
        build_s = time.time() - t0
        entry = {"build_seconds": round(build_s, 1),
                 "valid_range": {s.id: list(s.walk_range) for s in load_bank(folder).subspaces}, "validation": {}}
        for n in faces:
            bank = load_bank(folder)  # afresh for each count: validate_bank rewrites the entries it is given
            t1 = time.time()
            reports = validate_bank(G, bank, eyes, faces=n, seed=seed + 2, truth=truth)
            entry["validation"][str(n)] = {
                sid: {"passed": r["passed"], "reasons": r["reasons"], "own_effect": r["own_effect"],
                      "max_leakage": r["max_leakage"], "truth_lead": r.get("truth_lead")}
                for sid, r in reports.items()}
            print(f"seed {seed}, {n} faces: {sum(r['passed'] for r in reports.values())}/{len(reports)} pass "
                  f"({time.time() - t1:.0f} s)", flush=True)
        out["builds"][str(seed)] = entry
    return out


def table(res: dict) -> str:
    seeds, faces = res["seeds"], res["faces"]
    ids = list(next(iter(res["builds"].values()))["validation"][str(faces[0])])
    head = "| subspace | " + " | ".join(f"seed {s}: {n} faces" for s in seeds for n in faces) + " | valid range per seed |"
    lines = [head, "|---|" + "---|" * (len(seeds) * len(faces)) + "---|"]
    for sid in ids:
        cells = []
        for s in seeds:
            for n in faces:
                r = res["builds"][str(s)]["validation"][str(n)].get(sid)
                cells.append("–" if r is None else "pass" if r["passed"] else "**fail**: " + "; ".join(r["reasons"]))
        ranges = ", ".join(str(res["builds"][str(s)]["valid_range"].get(sid)) for s in seeds)
        lines.append(f"| `{sid}` | " + " | ".join(cells) + f" | {ranges} |")
    total = sum(1 for s in seeds for n in faces for r in res["builds"][str(s)]["validation"][str(n)].values())
    passed = sum(r["passed"] for s in seeds for n in faces for r in res["builds"][str(s)]["validation"][str(n)].values())
    builds = ", ".join(f"seed {s} {res['builds'][str(s)]['build_seconds']:.0f} s" for s in seeds)
    return "\n".join(lines) + f"\n\n{passed} of {total} validations pass. Build times: {builds} (0 s: reused).\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="facelab")
    ap.add_argument("--seeds", default="0,10,20", help="discovery seeds, comma-separated (3 or more apart: each "
                    "build also uses seed + 1 and seed + 2)")
    ap.add_argument("--faces", default="16,32,48")
    ap.add_argument("--workdir", default="runs/robustness")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--from-json", help="print the table of an earlier run's JSON and stop")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.from_json:
        print(table(json.loads(Path(args.from_json).read_text())))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    if any(abs(a - b) < 3 for i, a in enumerate(seeds) for b in seeds[i + 1:]):
        raise SystemExit("seeds must be at least 3 apart: a build uses seed, seed + 1 and seed + 2")
    torch.set_num_threads(args.threads)
    res = run(args.recipe, seeds, [int(n) for n in args.faces.split(",")], Path(args.workdir))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(table(res))


if __name__ == "__main__":
    main()
