"""Audit throughput: faces/s of generator + classifier per precision and batch size, with peak
memory and the share of the chip's peak. Meant for a GPU (the issue-21 goal: ≥ 1,000 faces/s at
1024² in bf16 on one H100/H200); runs on the CPU at small sizes to check itself.

    PYTHONPATH=. python benchmarks/bench_throughput.py --device cuda --resolution 1024 \
        --precisions fp32 bf16 fp16 --batches 16 32 64 128 --peak-tflops 989 --json out.json
    PYTHONPATH=. python benchmarks/bench_throughput.py --device cpu --resolution 64 --batches 2 4 --iters 2

Generator: config-f shape at --resolution (channel_base 32768, channel_max 512, mapping 8 × 512),
random weights. Classifier: a random ResNet-50 (benchmarks/resnet50.py) behind a CelebA-style
card (central crop, 224², ImageNet normalisation), called through iceaudit's Classifier, so the
card preprocessing is timed too. FLOPs per image are counted once with torch's FlopCounterMode
(multiply-adds × 2); share of peak = faces/s × FLOPs / (--peak-tflops × 1e12).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from resnet50 import random_resnet50  # noqa: E402

from iceaudit.audit.classifier import ModelCard, wrap_classifier  # noqa: E402
from iceaudit.stylegan2.networks import Generator  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=None, help="the chip's dense peak in this precision")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)

    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=args.resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 8},
                  synthesis_kwargs={"channel_base": 32768, "channel_max": 512}).eval().to(device)
    card = ModelCard(name="resnet50-celeba", input_size=224, crop="celeba", mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225), value_range=(0.0, 1.0), head="sigmoid", index=31)
    clf = wrap_classifier(random_resnet50().to(device), card, device=device)

    def faces(ws: torch.Tensor) -> torch.Tensor:
        return clf.decision_score(G.synthesis(ws))

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        faces(G.mapping(torch.randn(1, 512, device=device), None))
    gflop = counter.get_total_flops() / 1e9
    print(f"{device}, torch {torch.__version__}, {args.resolution}² config-f + ResNet-50: "
          f"{gflop:.1f} GFLOP per face\n")
    print("| precision | batch | faces/s | peak memory (GiB) | share of peak |\n|---|---:|---:|---:|---:|")
    rows = []
    for precision in args.precisions:
        G.precision = clf.precision = precision
        for batch in args.batches:
            ws = G.mapping(torch.randn(batch, 512, device=device), None).detach()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            try:
                with torch.no_grad():
                    faces(ws)
                    sync(device)
                    times = []
                    for _ in range(args.iters):
                        t0 = time.perf_counter()
                        faces(ws)
                        sync(device)
                        times.append(time.perf_counter() - t0)
            except torch.cuda.OutOfMemoryError:
                rows.append(dict(precision=precision, batch=batch, oom=True))
                print(f"| {precision} | {batch} | out of memory | | |", flush=True)
                continue
            rate = batch / statistics.median(times)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            share = rate * gflop * 1e9 / (args.peak_tflops * 1e12) if args.peak_tflops else None
            rows.append(dict(precision=precision, batch=batch, faces_per_s=rate, peak_gib=peak, share_of_peak=share))
            print(f"| {precision} | {batch} | {rate:.1f} | {'' if peak is None else f'{peak:.1f}'} | "
                  f"{'' if share is None else f'{100 * share:.1f} %'} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "resolution": args.resolution,
                                               "gflop_per_face": gflop, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
