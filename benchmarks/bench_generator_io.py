"""Time the generator loaders on a config-f-shaped 1024 px generator (random weights).

    PYTHONPATH=. python benchmarks/bench_generator_io.py [--resolution 1024] [--threads 1]

Writes, into a temporary directory: an official-structure training snapshot
pickle (G, D stand-in of the same size, G_ema), the native pair and a
rosinality .pt; then times loading each (best of --repeats) and the
fingerprint. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from stylegan2_io_fakes import Persistent, training_snapshot, write_pickle  # noqa: E402

from iceaudit import load_generator  # noqa: E402
from iceaudit.stylegan2.loaders import save_native, save_rosinality  # noqa: E402
from iceaudit.stylegan2.networks import Generator  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = Generator(512, 0, 512, args.resolution, 3, mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=32768, channel_max=512)).eval()
    n_params = sum(p.numel() for p in G.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        disc = Persistent("Discriminator")  # same tensor volume as a real D (~G's size)
        disc.parameters.update({f"w{i}": t for i, t in enumerate(G.state_dict().values())})
        write_pickle(training_snapshot(G, extra={"D": disc}), tmp / "snapshot.pkl")
        save_native(G, tmp / "native")
        save_rosinality(G, tmp / "rosinality.pt")
        rows = []
        for label, path in [("NVIDIA snapshot .pkl (G, D, G_ema)", tmp / "snapshot.pkl"),
                            ("rosinality .pt", tmp / "rosinality.pt"),
                            ("native .safetensors + .json", tmp / "native.safetensors")]:
            size_mb = os.path.getsize(path) / 2 ** 20
            seconds = best_of(lambda: load_generator(path), args.repeats)
            rows.append((label, f"{size_mb:.0f}", f"{seconds:.2f}"))
        fp = best_of(G.fingerprint, args.repeats)
    print(f"generator: {args.resolution} px, config-f channels, mapping 8, {n_params / 1e6:.1f} M parameters; "
          f"torch threads {args.threads}; best of {args.repeats}")
    print("| file | size (MiB) | load_generator (s) |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"| fingerprint() alone | | {fp:.2f} |")


if __name__ == "__main__":
    main()
