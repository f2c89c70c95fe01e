"""iceaudit's synthesis against the official stylegan2-ada-pytorch code on the CPU: same weights,
same machine, one run.

    git clone <NVlabs/stylegan2-ada-pytorch> /tmp/sg2ada   # not part of this repository
    PYTHONPATH=. python benchmarks/bench_vs_official.py --official /tmp/sg2ada --resolutions 256 1024 --batches 1 4

Builds the official Generator (config-f shape: channel_base 32768, channel_max 512, mapping
8 × 512, as TF-converted FFHQ pickles: no fp16 blocks, no clamp) with random weights, loads the
same state dict into `iceaudit.stylegan2.networks.Generator`, checks that both give the same
images, then times ``G.synthesis(ws)`` of both, alternating calls so that load drift hits both
alike. The official path is its inference default (``noise_mode='const', force_fp32=True``,
fused modulated convolution in eval); its non-fused form is timed too. Reports the median wall
seconds per call and process CPU seconds per image; ratio = official time / iceaudit time
(> 1: iceaudit faster). Prints a markdown table; ``--json`` also writes the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch


def config(resolution: int) -> dict:
    return dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=32768, channel_max=512))


def timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--iters", type=int, default=3, help="timed calls of each path (after one warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    sys.path.insert(0, args.official)
    from training.networks import Generator as Official  # noqa: E402 - the official code, from --official

    from iceaudit.stylegan2.networks import Generator

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.machine()}, {args.threads} threads, load {os.getloadavg()[0]:.1f}\n")
    print("| resolution | batch | max abs Δ image | iceaudit s / call | iceaudit fused s / call | official (fused, "
          "default) s / call | official non-fused s / call | ratio vs default | ratio vs non-fused | "
          "CPU s / image iceaudit | official |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for res in args.resolutions:
        torch.manual_seed(res)
        official = Official(**config(res)).eval()
        ours = Generator(**config(res)).eval()
        ours.load_state_dict(official.state_dict(), strict=True)
        for batch in args.batches:
            with torch.no_grad():
                ws = official.mapping(torch.randn(batch, 512), None)
                paths = {
                    "ours": lambda: ours.synthesis(ws),
                    "ours_fused": lambda: ours.synthesis(ws, fused_modconv=True),
                    "official": lambda: official.synthesis(ws, noise_mode="const", force_fp32=True),
                    "official_nonfused": lambda: official.synthesis(ws, noise_mode="const", force_fp32=True,
                                                                    fused_modconv=False),
                }
                images = {k: fn() for k, fn in paths.items()}  # warm-up, and the parity check
                diff = float((images["ours"] - images["official"]).abs().max())
                wall: dict[str, list[float]] = {k: [] for k in paths}
                cpu: dict[str, list[float]] = {k: [] for k in paths}
                for _ in range(args.iters):
                    for k, fn in paths.items():
                        w, c = timed(fn)
                        wall[k].append(w)
                        cpu[k].append(c)
            med = {k: statistics.median(v) for k, v in wall.items()}
            med_cpu = {k: statistics.median(v) / batch for k, v in cpu.items()}
            row = dict(resolution=res, batch=batch, max_abs_diff=diff, seconds=med, cpu_seconds_per_image=med_cpu,
                       ratio_default=med["official"] / med["ours"],
                       ratio_nonfused=med["official_nonfused"] / med["ours"])
            rows.append(row)
            print(f"| {res} | {batch} | {diff:.2e} | {med['ours']:.3f} | {med['ours_fused']:.3f} | {med['official']:.3f} | "
                  f"{med['official_nonfused']:.3f} | ×{row['ratio_default']:.2f} | ×{row['ratio_nonfused']:.2f} | "
                  f"{med_cpu['ours']:.3f} | {med_cpu['official']:.3f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "iters": args.iters, "rows": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
