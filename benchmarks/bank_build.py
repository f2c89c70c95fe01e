"""Time a full bank build (the FaceLab recipe) on a demo-sized random-weight generator.

Generator: 64×64 StyleGAN2, channels 4:256 8:256 16:128 32:64 64:32, mapping 4 × 128
(the FaceLab demo shape, ~2.7 M parameters), random weights. Eyes: random-weight
stand-ins for FaceLab's nets (a 20-point landmark CNN with soft-argmax heads and a
9-label parser CNN), since the real ones are not built yet. Timings only: the bases
found with random weights mean nothing.

    PYTHONPATH=. python benchmarks/bank_build.py [--threads 2] [--faces 6] [--out /tmp/bench-bank]
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from iceaudit.bank.build import Progress, build_bank
from iceaudit.bank.recipe import load_recipe
from iceaudit.criteria.base import Eyes
from iceaudit.criteria.fan import soft_argmax
from iceaudit.criteria.regions import FACELAB_LABELS
from iceaudit.stylegan2.networks import Generator


class StandInLandmarks(nn.Module):
    groups = {"jaw": list(range(0, 5)), "brows": list(range(5, 9)), "eyes": list(range(9, 15)),
              "nose": list(range(15, 17)), "mouth": list(range(17, 22))}
    num_points = 22

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(),
                                 nn.Conv2d(64, self.num_points, 3, 1, 1))

    def forward(self, x):
        return soft_argmax(self.net(x).relu())


class StandInParser(nn.Module):
    labels = list(FACELAB_LABELS)

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU(),
                                 nn.Conv2d(32, len(self.labels), 1))

    def forward(self, x):
        return self.net(x)


class Timed(Progress):
    def __init__(self):
        self.t0 = time.time()
        self.stages = []

    def stage(self, label, total):
        now = time.time()
        if self.stages:
            self.stages[-1]["seconds"] = round(now - self.stages[-1]["start"], 1)
        self.stages.append({"stage": label, "start": now})
        print(f"[{now - self.t0:7.1f}s] {label}", flush=True)
        return lambda n=1: None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--faces", type=int, default=None)
    ap.add_argument("--out", default="/tmp/bench-bank")
    ap.add_argument("--cache", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = Generator(128, 0, 128, 64, 3, mapping_kwargs={"num_layers": 4},
                  synthesis_kwargs={"channel_base": 2048, "channel_max": 256}).eval()
    params = sum(p.numel() for p in G.parameters())
    dims = sum(l.channels for l in G.style_layers)
    print(f"generator: {params:,} parameters, {dims} style dims, {G.num_ws} ws", flush=True)
    eyes = Eyes(StandInLandmarks().eval(), StandInParser().eval())
    recipe = load_recipe("facelab")
    prog = Timed()
    t0 = time.time()
    result = build_bank(G, recipe, eyes, out=args.out, progress=prog, faces=args.faces, cache_dir=args.cache,
                        keep_failing=True)
    total = time.time() - t0
    prog.stages[-1]["seconds"] = round(time.time() - prog.stages[-1]["start"], 1)
    summary = {
        "parameters": params, "style_dims": dims, "threads": args.threads,
        "faces": result.bank.meta["faces"], "subspaces": len(result.bank.subspaces),
        "skipped": list(result.skipped), "total_seconds": round(total, 1),
        "stages": [{k: v for k, v in s.items() if k != "start"} for s in prog.stages],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
