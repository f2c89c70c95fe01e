"""FaceLab renderer throughput: 10,000 faces at 64x64 (rendered at 128, downsampled).

    PYTHONPATH=. python benchmarks/facelab_render.py [--n 10000] [--threads 2]

Prints wall time, faces per second and the machine's load average (the
machine is shared; a loaded machine reads slower).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from iceaudit.facelab.factors import sample_factors
from iceaudit.facelab.render import render


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    f = sample_factors(args.n, 0)
    render(f[:16], args.resolution)  # warm-up
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = render(f, args.resolution, batch_size=args.batch)
    dt = time.perf_counter() - t0
    print(f"rendered {len(r)} faces at {args.resolution}x{args.resolution} in {dt:.1f} s "
          f"({len(r) / dt:.0f} faces/s), threads={args.threads}, batch={args.batch}, "
          f"load average before/after {load0:.1f}/{os.getloadavg()[0]:.1f}, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
