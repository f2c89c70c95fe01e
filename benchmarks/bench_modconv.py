"""One modulated convolution, fused against non-fused, per layer shape (the rule
`cpu_prefers_fused` in iceaudit/stylegan2/networks.py rests on these figures).

    PYTHONPATH=. python benchmarks/bench_modconv.py --threads 2

3×3 convolution, no upsampling, random weights and styles, median of 5 calls (3 at ≥ 512 px)
after one warm-up. Shapes: config-f (channel_base 32768, channel_max 512) and the demo generator
(2048, 256) at their resolutions; batches 1, 4, 16 (skipped where the input passes 64 Mi values).
ratio = non-fused ms / fused ms (> 1: fused faster). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from iceaudit.stylegan2.ops import modulated_conv2d


def median_seconds(fn, iters: int) -> float:
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| shape | resolution | channels | batch | fused ms | non-fused ms | ratio |\n|---|---:|---:|---:|---:|---:|---:|")
    for shape, base, cap, resolutions in (("config-f", 32768, 512, (8, 32, 64, 128, 256, 512, 1024)),
                                          ("demo", 2048, 256, (8, 32, 64))):
        for res in resolutions:
            c = min(base // res, cap)
            for n in (1, 4, 16):
                if res * res * c * n > 64 * 1024 * 1024:
                    continue
                x, w, s = torch.randn(n, c, res, res), torch.randn(c, c, 3, 3), torch.randn(n, c)
                iters = 3 if res >= 512 else 5
                with torch.no_grad():
                    fused = median_seconds(lambda: modulated_conv2d(x, w, s, padding=1, fused_modconv=True), iters)
                    plain = median_seconds(lambda: modulated_conv2d(x, w, s, padding=1, fused_modconv=False), iters)
                print(f"| {shape} | {res} | {c} | {n} | {fused * 1e3:.2f} | {plain * 1e3:.2f} | {plain / fused:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
