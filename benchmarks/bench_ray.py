"""Local backend vs the Ray backend with 1 and 2 workers, in one run, on the demo world.

    OMP_NUM_THREADS=1 python benchmarks/bench_ray.py --n 32 --shard-faces 8 --json benchmarks/bench_ray.json

Every audit runs in this process with one torch thread (and each Ray worker with one),
on the same faces; the audits are checked to give identical tables. Reported: wall time
of `run_audit` (walks, statistics; no images, no baselines), Ray start-up (``ray.init``)
apart, the speed-up of 2 workers over 1, and the Ray overhead at 1 worker against local.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--shard-faces", type=int, default=8)
    ap.add_argument("--subspaces", default="skin_tone,smile,background")
    ap.add_argument("--classifier", default="smiling_skin_shortcut")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    import ray

    from iceaudit.api import load_bank, load_classifier
    from iceaudit.audit.runner import AuditSettings, run_audit
    from iceaudit.audit.walks import alpha_grid
    from iceaudit.resources import demo_classifier
    from iceaudit.stylegan2.loaders import load_generator

    G, bank = load_generator("demo"), load_bank("demo")
    clf = load_classifier(*demo_classifier(args.classifier))
    subspaces = args.subspaces.split(",")
    base = AuditSettings.of(n=args.n, shard_faces=args.shard_faces, subspaces=subspaces, progress=False)
    images = args.n * sum(len(alpha_grid(bank[s].step_range, base.science.n_steps)) + 2 * base.science.n_null for s in subspaces)

    def timed(**kw):
        t0 = time.perf_counter()
        result = run_audit(clf, G, bank, base.replace(**kw))
        return time.perf_counter() - t0, result

    t_local, local = timed()
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    t_init = time.perf_counter() - t0
    t_ray1, ray1 = timed(backend="ray", workers=1)
    t_ray2, ray2 = timed(backend="ray", workers=2)
    ray.shutdown()
    identical = all(r.results.equals(local.results) and r.counterfactuals.equals(local.counterfactuals)
                    for r in (ray1, ray2))
    record = {
        "n": args.n, "subspaces": subspaces, "shard_faces": args.shard_faces,
        "units": local.record.provenance.execution.units, "walk_images": images,
        "cpu_count": os.cpu_count(), "torch_threads": 1, "load_average": os.getloadavg()[0],
        "seconds": {"local": t_local, "ray_init": t_init, "ray_1_worker": t_ray1, "ray_2_workers": t_ray2},
        "images_per_s": {"local": images / t_local, "ray_1_worker": images / t_ray1, "ray_2_workers": images / t_ray2},
        "speedup_2_over_1_worker": t_ray1 / t_ray2, "ray_1_worker_over_local": t_ray1 / t_local,
        "identical_tables": identical,
    }
    print(json.dumps(record, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
