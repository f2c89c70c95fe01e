"""Time a real demo audit: shipped generator and bank, a planted classifier, N faces,
with partial synthesis (the default) and with full re-synthesis of every image.

    PYTHONPATH=. python benchmarks/bench_demo_audit.py --n 64 --classifier smiling_skin_shortcut

Prints wall and process-CPU seconds, images scored (walks + nulls + null matching +
bisection, counted by wrapping the classifier) and images per second for both runs,
and the largest score difference between them. No baselines.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from iceaudit.audit.classifier import load_card, load_classifier
from iceaudit.audit.runner import AuditSettings, run_audit
from iceaudit.bank.format import load_bank
from iceaudit.stylegan2.loaders import load_generator

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--classifier", default="smiling_skin_shortcut")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = ROOT / "examples" / "facelab"
    clf = load_classifier(d / f"{args.classifier}.pt", load_card(d / f"{args.classifier}.toml"))
    G, bank = load_generator("demo"), load_bank(ROOT / "subspace_bank" / "demo")
    counted = {"images": 0}
    score = clf.decision_score

    def counting(images):
        counted["images"] += images.shape[0]
        return score(images)

    clf.decision_score = counting  # the runner calls this verb
    runs = {}
    for partial in (True, False):
        counted["images"] = 0
        w0, c0 = time.time(), time.process_time()
        res = run_audit(clf, G, bank, AuditSettings.of(n=args.n, seed=0, device="cpu", progress=False, partial=partial))
        wall, cpu = time.time() - w0, time.process_time() - c0
        runs[partial] = res.results["score"].to_numpy()
        print(f"{'partial' if partial else 'full   '}: {counted['images']} images, wall {wall:.1f} s, "
              f"CPU {cpu:.1f} s, {counted['images'] / wall:.1f} images/s")
    print(f"max |score difference| partial vs full: {np.max(np.abs(runs[True] - runs[False])):.2e}")


if __name__ == "__main__":
    main()
