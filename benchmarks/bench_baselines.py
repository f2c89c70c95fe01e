"""Cost of each baseline per face on this CPU (BENCHMARKS.md ## Baselines).

A FaceLab-sized StyleGAN2 generator with random weights (64x64; channels
4:256, 8:256, 16:128, 32:64, 64:32; mapping 4 x 128, as docs/notes.md's demo
generator) and a small random-weight CNN classifier (3 strided convs, 64 px).
Random weights cost the same as trained ones.

    PYTHONPATH=. python benchmarks/bench_baselines.py --faces 8 --threads 1

Prints markdown tables: CPU seconds per face (process time, one thread) for
each method with the options `run_baselines` uses by default, Captum's quality
metrics separately, and AttFind's partial-synthesis speed-up over full
re-synthesis per style layer.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from iceaudit.audit.attfind import style_effects
from iceaudit.audit.baselines import BaselineOptions, _pixel_method
from iceaudit.audit.latent_attribution import latent_attribution
from iceaudit.audit.pixel_attribution import PIXEL_METHODS, quality_metrics
from iceaudit.bank.format import Bank, Subspace
from iceaudit.stylegan2.networks import Generator


class Classifier64(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = F.relu(self.c2(x))
        x = F.relu(self.c3(x))
        return self.head(x.mean((2, 3)))[:, 0]


def demo_sized_generator() -> Generator:
    torch.manual_seed(0)
    G = Generator(128, 0, 128, 64, 3, mapping_kwargs={"num_layers": 4},
                  synthesis_kwargs={"channel_base": 2048, "channel_max": 256})
    return G.eval().requires_grad_(False)


LABELS9 = ["background", "skin", "hair", "brows", "eyes", "nose", "mouth", "glasses", "beard"]


def label_map(n: int, r: int) -> torch.Tensor:
    """Nine concentric/box parts standing in for a parser (cost does not depend on the layout)."""
    yy, xx = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
    lab = ((yy * 9) // r + (xx * 3) // r) % 9
    return lab.expand(n, r, r).clone()


def bank_for(G: Generator, n_subspaces: int = 12) -> Bank:
    g = torch.Generator().manual_seed(0)
    subs = []
    for i in range(n_subspaces):
        v = torch.randn(3, G.w_dim, generator=g)
        q = torch.linalg.qr(v.T).Q.T
        subs.append(Subspace(f"s{i}", f"s{i}", "", [], "W+", [0, G.num_ws - 1], q, "u", 1.0, (-2, 2), "pca", ""))
    return Bank("bench", G.fingerprint(), subs)


PASSES = {  # forward (+ backward) passes of the classifier per face with the default options
    "saliency": "1 fwd+bwd", "input_x_gradient": "1 fwd+bwd", "ig_blur": "16 fwd+bwd", "ig_mean": "16 fwd+bwd",
    "smoothgrad": "8 fwd+bwd", "occlusion": "225 fwd (8 px window, stride 4)", "feature_ablation": "10 fwd (9 parts)",
    "gradcam": "1 fwd+bwd",
}


def timed(fn):
    """CPU seconds of this process (one thread): far less sensitive than wall time to the
    other jobs on this shared machine."""
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--attfind-faces", type=int, default=0, help="faces for the exhaustive AttFind timing (0: skip it)")
    ap.add_argument("--parts", default="pixel,latent,attfind,layers", help="which tables to measure")
    ap.add_argument("--channels-per-layer", type=int, default=16, help="channels per layer for the per-layer AttFind timing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G, f = demo_sized_generator(), Classifier64().eval()
    n = args.faces
    with torch.no_grad():
        ws = G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(1)))
        images = G.synthesis(ws).clamp(-1, 1)
    lm = label_map(n, 64)
    opts = BaselineOptions()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}, "
          f"{n} faces at 64 px, conv style channels {sum(s.channels for s in G.style_layers if s.kind == 'conv')}, "
          f"load average at start {os.getloadavg()[0]:.1f} (shared CPU)")
    _pixel_method(f, images[:2], lm[:2], LABELS9, "saliency", opts)  # warm-up (captum import, first-call overhead)
    print("| method | classifier passes / face | CPU s / face | quality metrics CPU s / face (on 8 faces) |")
    print("|---|---|---|---|")
    parts = set(args.parts.split(","))
    for m in PIXEL_METHODS if "pixel" in parts else ():
        run, sec = timed(lambda: _pixel_method(f, images, lm, LABELS9, m, opts))
        attr = run.first
        q = min(n, opts.quality_faces)
        _, qsec = timed(lambda: quality_metrics(f, images[:q], attr[:q], m, n_steps=opts.n_steps, nt_samples=opts.nt_samples))
        print(f"| {m} | {PASSES[m]} | {sec / n:.4f} | {qsec / q:.4f} |", flush=True)
    bank = bank_for(G)
    for steps in (8, 16, 32) if "latent" in parts else ():
        lat, sec = timed(lambda: latent_attribution(f, G, ws, bank, n_steps=steps, internal_batch_size=opts.internal_batch_size))
        print(f"| latent (IG in S, {steps} steps, 12 subspaces; completeness gap {lat['completeness_gap']:.3f}) "
              f"| {steps + 2} G+C fwd/bwd | {sec / n:.3f} | - |", flush=True)
    for screen in (32, 128) if "attfind" in parts else ():
        e, sec = timed(lambda: style_effects(f, G, ws, batch_size=opts.attfind_batch, screen=screen))
        print(f"| attfind screen={screen} (partial synthesis) | {e.renders // n} renders + 1 G+C bwd | {sec / n:.3f} | - |", flush=True)
    if "layers" not in parts:
        return
    per = args.channels_per_layer
    print(f"\nAttFind per style layer: {per} channels x 2 directions, 1 face, CPU s per edit:\n")
    print("| layer | channels in layer | partial synthesis | full re-synthesis | speed-up |")
    print("|---|---|---|---|---|")
    total_p = total_f = 0.0
    for sl in G.style_layers:
        if sl.kind != "conv":
            continue
        only = [f"{sl.name}:{c}" for c in range(min(per, sl.channels))]
        ep, tp = timed(lambda: style_effects(f, G, ws[:1], batch_size=opts.attfind_batch, only=only))
        ef, tf = timed(lambda: style_effects(f, G, ws[:1], batch_size=opts.attfind_batch, only=only, partial=False))
        assert torch.allclose(ep.effects, ef.effects, atol=1e-5)
        edits = 2 * len(only)
        total_p += tp / edits * 2 * sl.channels
        total_f += tf / edits * 2 * sl.channels
        print(f"| {sl.name} | {sl.channels} | {tp / edits * 1000:.1f} ms | {tf / edits * 1000:.1f} ms | {tf / tp:.2f}x |", flush=True)
    print(f"\nExhaustive AttFind, extrapolated from the table: {total_p:.0f} CPU s per face with partial synthesis, "
          f"{total_f:.0f} with full re-synthesis ({total_f / total_p:.2f}x).")
    k = args.attfind_faces
    if k == 0:
        return
    eff_p, sec_p = timed(lambda: style_effects(f, G, ws[:k], batch_size=opts.attfind_batch))
    print(f"| attfind exhaustive, partial synthesis | {eff_p.renders // k} renders | {sec_p / k:.3f} | - |", flush=True)
    eff_f, sec_f = timed(lambda: style_effects(f, G, ws[:k], batch_size=opts.attfind_batch, partial=False))
    print(f"| attfind exhaustive, full re-synthesis | {eff_f.renders // k} renders | {sec_f / k:.3f} | - |", flush=True)
    diff = (eff_p.effects - eff_f.effects).abs().max().item()
    print(f"\npartial vs full AttFind: speed-up {sec_f / sec_p:.2f}x, max |effect difference| {diff:.2e}; "
          f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
