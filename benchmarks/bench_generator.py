"""Generator throughput and partial-synthesis speed-up (random weights).

    python benchmarks/bench_generator.py --config small --batches 1 8 32 --iters 5
    python benchmarks/bench_generator.py --config f1024 --batches 1 8 --iters 2 --partial-batch 4

Throughput = images / second of `G.synthesis(ws)` (mapping excluded; it is
negligible), after one warm-up call, under torch.no_grad, noise_mode 'const'.
Partial synthesis: a batch of edited styles through `synthesis_suffix` from a
cached `synthesis_prefix` state, against `synthesis_from_styles` of the same
edited batch (full re-synthesis). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from iceaudit.stylegan2.networks import Generator

CONFIGS = {
    # FaceLab-sized demo generator (docs/notes.md): 64 px, channels 4:256 … 64:32, mapping 4 × 128
    "small": dict(z_dim=128, c_dim=0, w_dim=128, img_resolution=64, img_channels=3,
                  mapping_kwargs=dict(num_layers=4),
                  synthesis_kwargs=dict(channel_base=2048, channel_max=256)),
    # FFHQ config-f shape: 1024 px, channel_base 32768, channel_max 512, mapping 8 × 512
    "f1024": dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=32768, channel_max=512, conv_clamp=256)),
}
EDIT_LAYERS = {
    "small": {"early": "b8.conv0", "middle": "b16.conv0", "late": "b32.conv0"},
    "f1024": {"early": "b8.conv0", "middle": "b64.conv0", "late": "b256.conv0"},
}


def timed(fn, iters: int, warmup: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds (all threads) per call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="small")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fused", choices=["auto", "yes", "no"], default="auto")
    ap.add_argument("--partial-batch", type=int, default=8, help="edits per partial-synthesis call (0 = skip)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = Generator(**CONFIGS[args.config]).eval().to(args.device)
    G.precision = args.precision
    fused = {"auto": None, "yes": True, "no": False}[args.fused]
    params = sum(p.numel() for p in G.parameters())
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(f"# {args.config}: {params / 1e6:.1f} M params, {G.img_resolution} px, {len(G.style_layers)} style layers, "
          f"device {args.device} ({platform.processor() or platform.machine()}), threads {args.threads}, "
          f"fused {args.fused}, precision {args.precision}, torch {torch.__version__}\n")

    print("| batch | wall s / call (median) | images / s (wall) | CPU s / image |")
    print("|---:|---:|---:|---:|")
    with torch.no_grad():
        for n in args.batches:
            ws = G.mapping(torch.randn([n, G.z_dim], device=args.device), psi=0.7)

            def run():
                G.synthesis(ws, fused_modconv=fused)
                sync()

            t, c = timed(run, args.iters, args.warmup)
            print(f"| {n} | {t:.3f} | {n / t:.2f} | {c / n:.3f} |", flush=True)

        if args.partial_batch:
            n = args.partial_batch
            ws = G.mapping(torch.randn([n, G.z_dim], device=args.device), psi=0.7)
            styles = G.styles(ws)

            def full():
                G.synthesis_from_styles(styles, fused_modconv=fused)
                sync()

            t_full, c_full = timed(full, args.iters, args.warmup)
            print(f"\nPartial synthesis, batch of {n} edited faces; full re-synthesis {t_full:.3f} s wall, "
                  f"{c_full:.3f} CPU s\n")
            print("| edit at | layer | prefix (once) wall s | suffix wall s | suffix CPU s | speed-up (wall) | speed-up (CPU) |")
            print("|---|---|---:|---:|---:|---:|---:|")
            for where, layer in EDIT_LAYERS[args.config].items():
                t0 = time.perf_counter()
                state = G.synthesis_prefix(styles, layer, fused_modconv=fused)
                sync()
                t_prefix = time.perf_counter() - t0

                def suffix():
                    G.synthesis_suffix(state, styles, fused_modconv=fused)
                    sync()

                t_suffix, c_suffix = timed(suffix, args.iters, args.warmup)
                print(f"| {where} | {layer} | {t_prefix:.3f} | {t_suffix:.3f} | {c_suffix:.3f} | "
                      f"{t_full / t_suffix:.2f}× | {c_full / c_suffix:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
