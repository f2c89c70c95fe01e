"""What TCAV costs: the CAV fit in both forms, and TCAV inside an audit of the demo world.

1. `fit_svm` on random activations, primal (L-BFGS over the D weights) against the span form
   (finite Newton steps over the examples), with the cosine between their normals.
2. `iceaudit.audit(module, ...)` of a small module classifier (a conv layer reading the top band's
   brightness) on the demo generator and bank with `baselines="tcav"`: TCAV's own seconds.

    PYTHONPATH=. python benchmarks/bench_tcav.py --faces 8
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

import iceaudit
from iceaudit.bank.concept import fit_svm


class TopBrightness(torch.nn.Module):
    """Mean ReLU response of a uniform 3x3 conv over the top quarter of the image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 27)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))[:, :, : x.shape[-1] // 4].mean((1, 2, 3)) * 10 - 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    print("| examples x activations | primal (3000 L-BFGS iterations) s | span s | cos |")
    print("|---|---:|---:|---:|")
    for n, d in [(16, 16384), (64, 100352)]:
        x = torch.relu(torch.randn(n, d, generator=g))
        y = torch.rand(n, generator=g) > 0.5
        x[y] += 0.05 * torch.rand(d, generator=g)
        t0 = time.perf_counter()
        a = fit_svm(x, y, form="primal", iters=3000)
        primal = time.perf_counter() - t0
        t0 = time.perf_counter()
        b = fit_svm(x, y, form="span")
        span = time.perf_counter() - t0
        print(f"| {n} x {d:,} | {primal:.2f} | {span:.4f} | {float(a @ b):.7f} |")
    card = {"name": "top-brightness", "head": "logit", "threshold": 0.0, "input_size": 64}
    with tempfile.TemporaryDirectory() as out:
        result = iceaudit.audit(TopBrightness(), card, n=args.faces, baselines="tcav", out=out)
        tcav = result.record.baselines.tcav
    print(f"TCAV on the demo world: {tcav.n_faces} faces, {len(tcav.subspaces)} concepts x {tcav.n_random} random "
          f"sets: {tcav.seconds:.1f} s (status {tcav.status})")


if __name__ == "__main__":
    main()
