"""Reduced precision against float32 on the same weights: parity and speed.

    PYTHONPATH=. python benchmarks/bench_precision.py --faces 256 --threads 2

Parity: the shipped FaceLab generator (trained, 64 px) and a random 64 px generator
with conv_clamp 256; images as max |Δ| and RMS Δ relative to the largest float32 pixel;
on the shipped generator also each styled layer alone in bf16, and fp16 down to its b4 block;
the shipped classifiers' decision scores (generator and classifier both reduced) as
max |Δ| relative to the spread of the float32 scores. Speed: images/s of the shipped
generator + the smiling classifier, batch 32, per precision, measured in one run.
Prints markdown tables.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from iceaudit.audit.classifier import load_card, load_classifier
from iceaudit.facelab.asset_files import ASSETS
from iceaudit.resources import demo_classifier
from iceaudit.stylegan2.loaders import load_generator
from iceaudit.stylegan2.networks import Generator

PRECISIONS = ("bf16", "fp16")
CLASSIFIERS = ("smiling", "smiling_skin_shortcut", "eyeglasses_background_shortcut")


def in_precision(G, clf, precision, fn):
    G.precision = precision
    if clf is not None:
        clf.precision = precision
    try:
        with torch.no_grad():
            return fn()
    finally:
        G.precision = "fp32"
        if clf is not None:
            clf.precision = "fp32"


def batched(fn, ws, batch=64):
    return torch.cat([fn(ws[i:i + batch]) for i in range(0, len(ws), batch)])


def image_rows(name, G, ws):
    ref = in_precision(G, None, "fp32", lambda: batched(G.synthesis, ws))
    scale = ref.abs().max()
    rows = []
    for p in PRECISIONS:
        low = in_precision(G, None, p, lambda: batched(G.synthesis, ws))
        d = (low - ref).abs()
        rows.append(f"| {name} | {p} | {float(d.max() / scale):.4f} | {float(d.pow(2).mean().sqrt() / scale):.5f} |")
    return rows


def one_layer_rows(G, ws):
    """bf16 in one styled layer at a time (the rest float32), and fp16 in every block down to b4:
    where the reduced-precision error comes from."""
    from iceaudit.precision import autocast

    with torch.no_grad():
        ref = G.synthesis(ws)
    scale = ref.abs().max()
    rows = []
    for sl in G.style_layers:
        block, name = sl.name.split(".")
        layer = getattr(getattr(G.synthesis, block), name)
        plain = layer.forward_styles

        def reduced(*a, _plain=plain, **k):
            with autocast(ws.device.type, "bf16"):
                return _plain(*a, **k)

        layer.forward_styles = reduced
        try:
            with torch.no_grad():
                worst = float((G.synthesis(ws) - ref).abs().max() / scale)
        finally:
            del layer.forward_styles
        rows.append(f"| {sl.name} alone in bf16 | {worst:.4f} |")
    kept = G.synthesis.reduced_resolution
    G.synthesis.reduced_resolution = 4
    try:
        low = in_precision(G, None, "fp16", lambda: G.synthesis(ws))
    finally:
        G.synthesis.reduced_resolution = kept
    rows.append(f"| every block (b4 up) in fp16 | {float((low - ref).abs().max() / scale):.4f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["ICEAUDIT_TRUST_CLASSIFIER"] = "1"  # the shipped classifiers
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"{args.faces} faces\n")

    demo = load_generator(str(ASSETS / "demo_generator.safetensors"))
    torch.manual_seed(1)
    with torch.no_grad():
        ws = demo.mapping(torch.randn(args.faces, demo.z_dim), None)
    torch.manual_seed(0)
    clamped = Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=64, img_channels=3,
                        mapping_kwargs={"num_layers": 2},
                        synthesis_kwargs={"channel_base": 2048, "channel_max": 64, "conv_clamp": 256}).eval()
    with torch.no_grad():
        ws_c = clamped.mapping(torch.randn(args.faces, 64), None)

    print("| generator | precision | images max abs Δ / max | images RMS Δ / max |\n|---|---|---:|---:|")
    for row in image_rows("shipped demo (trained)", demo, ws) + image_rows("random, conv_clamp 256", clamped, ws_c):
        print(row)

    print("\n| shipped demo generator, first 24 faces | images max abs Δ / max |\n|---|---:|")
    for row in one_layer_rows(demo, ws[:24]):
        print(row)

    print("\n| classifier | precision | scores max abs Δ / spread | spread (fp32) |\n|---|---|---:|---:|")
    for name in CLASSIFIERS:
        weights, card = demo_classifier(name)
        clf = load_classifier(weights, load_card(card))
        score = lambda w: clf.decision_score(demo.synthesis(w))  # noqa: E731
        ref = in_precision(demo, clf, "fp32", lambda: batched(score, ws))
        spread = float(ref.max() - ref.min())
        for p in PRECISIONS:
            low = in_precision(demo, clf, p, lambda: batched(score, ws))
            print(f"| {name} | {p} | {float((low - ref).abs().max()) / spread:.4f} | {spread:.3f} |")

    weights, card = demo_classifier("smiling")
    clf = load_classifier(weights, load_card(card))
    batch = ws[:32]
    print("\n| precision | images/s (generator + classifier, batch 32) | vs fp32 |\n|---|---:|---:|")
    speeds = {}
    for p in ("fp32",) + PRECISIONS:
        def call():
            in_precision(demo, clf, p, lambda: clf.decision_score(demo.synthesis(batch)))
        call()
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        speeds[p] = len(batch) / statistics.median(times)
        print(f"| {p} | {speeds[p]:.1f} | ×{speeds[p] / speeds['fp32']:.2f} |")


if __name__ == "__main__":
    main()
