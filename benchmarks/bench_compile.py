"""Eager vs `torch.compile` (`--compile`), contiguous vs channels_last, on this machine (issue 21).

Cases: (a) the shipped demo generator's synthesis, 64 px, batch 16; (b) a config-f-shaped
StyleGAN2 at 256 px with random weights, batch 1 and 4; (c) the ResNet-50-shaped classifier of
benchmarks/resnet50.py at 224 px, batch 4. Each case runs four variants: eager or compiled
(through `iceaudit.compiling.Compiler`, as an audit compiles), contiguous or channels_last.
channels_last for the generator means its weights and the features entering every block (this
script switches it on per generator; the package keeps the generator contiguous); for the
classifier, its weights and its input. After one untimed call per variant (the compile, whose
seconds are printed), repetitions interleave the variants and the table gives medians, so that
a noisy machine slows all variants alike. Every variant's output is checked against eager
contiguous.

    PYTHONPATH=. python benchmarks/bench_compile.py --reps 5 --threads 1

`--cases audit` instead times whole demo audits (shipped generator and bank, the TorchScript
`smiling_skin_shortcut` classifier, which stays eager; no baselines), eager then --compile, one
run each, compile time included: what an audit gains once every compile is paid for.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).parent))

CL = torch.channels_last


def _enter_channels_last(original: Callable) -> Callable:
    def enter(self, x, batch, dtype):
        x, shortcut = original(self, x, batch, dtype)
        return (x.contiguous(memory_format=CL), shortcut) if getattr(self, "bench_channels_last", False) else (x, shortcut)
    return enter


def generator_variants(G, ws: torch.Tensor, backend: str) -> dict[str, Callable[[], torch.Tensor]]:
    """The four ways to run G's synthesis from styles on ws."""
    from iceaudit.compiling import Compiler

    cl = copy.deepcopy(G).to(memory_format=CL)
    for block in cl.synthesis.children():
        block.bench_channels_last = True
    styles = G.styles(ws)
    out = {}
    for fmt, net in (("contiguous", G), ("channels_last", cl)):
        out[f"eager {fmt}"] = lambda net=net: net.synthesis.synthesis_from_styles(styles)
        form = Compiler(backend).wrap(net.synthesis, "synthesis_from_styles", "synthesis")
        out[f"compiled {fmt}"] = lambda form=form: form(styles)
    return out


def classifier_variants(model: torch.nn.Module, x: torch.Tensor, backend: str) -> dict[str, Callable[[], torch.Tensor]]:
    from iceaudit.compiling import Compiler

    cl = copy.deepcopy(model).to(memory_format=CL)
    x_cl = x.contiguous(memory_format=CL)
    out = {"eager contiguous": lambda: model(x), "eager channels_last": lambda: cl(x_cl)}
    plain, last = Compiler(backend).wrap(model, None, "classifier"), Compiler(backend).wrap(cl, None, "classifier")
    out["compiled contiguous"] = lambda: plain(x)
    out["compiled channels_last"] = lambda: last(x_cl)
    return out


def measure(name: str, variants: dict[str, Callable[[], torch.Tensor]], reps: int) -> list[dict]:
    ref = None
    first: dict[str, tuple[float, float]] = {}  # label -> (seconds of the first call, max abs Δ / max)
    for label, fn in variants.items():
        t0 = time.perf_counter()
        y = fn().float()
        seconds = time.perf_counter() - t0
        ref = y if ref is None else ref
        first[label] = (seconds, float((y - ref).abs().max() / ref.abs().max()))
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(reps):
        for label, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
    base = statistics.median(times["eager contiguous"])
    rows = []
    for label in variants:
        med = statistics.median(times[label])
        rows.append(dict(case=name, variant=label, first=first[label][0], median=med, speedup=base / med,
                         err=first[label][1]))
        print(f"| {name} | {label} | {first[label][0]:.1f} | {med:.3f} | ×{base / med:.2f} | {first[label][1]:.1e} |",
              flush=True)
    return rows


def audits(n: int) -> None:
    """Wall seconds of an eager and a compiled demo audit of `n` faces, and their largest score difference."""
    import iceaudit
    from iceaudit.resources import demo_classifier

    os.environ["ICEAUDIT_TRUST_CLASSIFIER"] = "1"  # the shipped TorchScript classifier
    print("| demo audit | faces | wall s | max abs Δ score | compile record |")
    print("|---|---:|---:|---:|---|")
    scores = {}
    for compiled in (False, True):
        t0 = time.perf_counter()
        a = iceaudit.audit(*demo_classifier("smiling_skin_shortcut"), n=n, baselines="none", progress=False,
                           compile=compiled)
        wall = time.perf_counter() - t0
        scores[compiled] = a.results.sort_values(["subspace", "sample", "alpha"])["score"].to_numpy()
        outcome = a.record.provenance.execution.compile
        diff = abs(scores[compiled] - scores[False]).max()
        print(f"| {'--compile' if compiled else 'eager'} | {n} | {wall:.0f} | {diff:.1e} | used={outcome.used}, "
              f"compiled={outcome.compiled}, skipped={len(outcome.skipped)} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="timed calls per variant, interleaved")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", default="inductor", help="torch.compile backend")
    ap.add_argument("--cases", nargs="+", default=["demo64", "f256", "resnet50"], help="… or: audit")
    ap.add_argument("--faces", type=int, default=16, help="faces per demo audit (--cases audit)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.cases == ["audit"]:
        print(f"torch {torch.__version__}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}\n")
        audits(args.faces)
        return

    from iceaudit.stylegan2 import networks
    from iceaudit.stylegan2.loaders import load_generator
    from iceaudit.stylegan2.networks import Generator
    from resnet50 import random_resnet50

    networks.SynthesisBlock.enter = _enter_channels_last(networks.SynthesisBlock.enter)
    print(f"torch {torch.__version__}, {platform.machine()}, {args.threads} thread(s), backend {args.backend}, "
          f"load {os.getloadavg()[0]:.1f}, {args.reps} interleaved reps\n")
    print("| case | variant | first call s (compile) | median s / call | speed vs eager contiguous | max abs Δ / max |")
    print("|---|---|---:|---:|---:|---:|")
    t0 = time.perf_counter()
    with torch.no_grad():
        if "demo64" in args.cases:
            G = load_generator("demo").eval()
            torch.manual_seed(0)
            measure("demo 64 px, batch 16", generator_variants(G, G.mapping(torch.randn(16, G.z_dim), None), args.backend),
                    args.reps)
        if "f256" in args.cases:
            torch.manual_seed(256)
            G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                          mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=32768, channel_max=512)).eval()
            for batch in (1, 4):
                ws = G.mapping(torch.randn(batch, 512), None)
                measure(f"config-f 256 px, batch {batch}", generator_variants(G, ws, args.backend), args.reps)
        if "resnet50" in args.cases:
            net = random_resnet50()
            torch.manual_seed(0)
            measure("ResNet-50 224 px, batch 4", classifier_variants(net, torch.randn(4, 3, 224, 224), args.backend),
                    args.reps)
    print(f"\nwall {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
