"""Audit speed: wall time and images/s of a whole audit, and the speed-up that
partial synthesis (re-running only the layers after the edited one) gives over
full re-synthesis inside the same audit.

Generator: random weights in the FaceLab demo shape (64x64, channels
4:256 8:256 16:128 32:64 64:32, mapping 4 x 128) until the trained demo
generator ships; pass --generator PATH --bank DIR to time a real one.
Bank: random orthonormal directions spread over the spaces and layers a real
bank uses (W, W+ early/late, S at 8..64 px). Classifier: a small random CNN
(TorchScript). Wall time depends on the load of the (shared) machine; CPU
time (process time) much less so: both are reported.

    python benchmarks/bench_audit.py [--n 64] [--null 8] [--steps 9] [--threads 2] [--subspaces a,b] [--json OUT]
    python benchmarks/bench_audit.py --shape config-f --device cuda --n 256      # on a GPU
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iceaudit.audit import AuditSettings, ModelCard, load_classifier, run_audit  # noqa: E402
from iceaudit.bank.format import Bank, Subspace  # noqa: E402
from iceaudit.stylegan2.networks import Generator  # noqa: E402


def demo_shaped_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(z_dim=128, c_dim=0, w_dim=128, img_resolution=64, img_channels=3,
                     mapping_kwargs={"num_layers": 4},
                     synthesis_kwargs={"channel_base": 2048, "channel_max": 256}).eval()


def config_f_generator(seed: int = 0) -> Generator:
    """FFHQ 1024 config-f shape (30 M synthesis parameters), random weights: for a GPU."""
    torch.manual_seed(seed)
    return Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                     mapping_kwargs={"num_layers": 8},
                     synthesis_kwargs={"channel_base": 32768, "channel_max": 512}).eval()


def random_bank(G, seed: int = 0) -> Bank:
    gen = torch.Generator().manual_seed(seed)
    layers = {l.name: l for l in G.style_layers}

    def basis(dim):
        q, _ = torch.linalg.qr(torch.randn(dim, 2, generator=gen, dtype=torch.float64))
        return q.T.contiguous().float()

    r = G.img_resolution
    specs = [("w", "W", []), ("wplus_early", "W+", [0, 3]), ("wplus_late", "W+", [6, G.num_ws - 1]),
             ("s_b8", "S", ["b8.conv1"]), ("s_b16", "S", ["b16.conv0", "b16.conv1"]),
             ("s_b32", "S", ["b32.conv1"]), (f"s_b{r}", "S", [f"b{r}.conv0"]), (f"s_rgb{r}", "S", [f"b{r}.torgb"])]
    subs = []
    for sid, space, ls in specs:
        dim = G.w_dim if space != "S" else sum(layers[n].channels for n in ls)
        subs.append(Subspace(id=sid, name=sid, description="random direction", tags=[], space=space, layers=ls,
                             basis=basis(dim), unit="random", unit_norm=2.0, step_range=(-2.0, 2.0),
                             method="pca", criterion="none"))
    return Bank(name="bench", generator_fingerprint=G.fingerprint(), subspaces=subs)


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x)


class Counting:
    """Wraps decision_score to count the images scored (walk grid, nulls, bisection)."""

    def __init__(self, clf):
        self.clf, self.images = clf, 0
        self.inner = clf.decision_score
        clf.decision_score = self

    def __call__(self, images):
        self.images += len(images)
        return self.inner(images)


def timed_audit(G, bank, clf, args, partial: bool, out: Path) -> dict:
    counter = Counting(clf)
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_audit(clf, G, bank, AuditSettings.of(
        n=args.n, n_steps=args.steps, n_null=args.null, device=args.device, partial=partial, progress=False,
        batch_images=args.batch, out=out, subspaces=args.subspaces.split(",") if args.subspaces else None))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    clf.decision_score = counter.inner
    return {"partial": partial, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "images": counter.images,
            "images_per_s": round(counter.images / wall, 1), "images_per_cpu_s": round(counter.images / cpu, 1), "top_driver": result.drivers[0].subspace,
            "scores": result.results["score"].to_numpy()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=9)
    ap.add_argument("--null", type=int, default=8)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument("--shape", choices=("demo", "config-f"), default="demo",
                    help="demo: 64x64 FaceLab shape (CPU); config-f: FFHQ 1024 shape (use a GPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--subspaces", default=None, help="comma-separated ids of the random bank to audit (default: all 8)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = (demo_shaped_generator() if args.shape == "demo" else config_f_generator()).to(args.device)
    bank = random_bank(G)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.jit.save(torch.jit.script(SmallCNN().eval()), str(tmp / "clf.pt"))
        clf = load_classifier(tmp / "clf.pt", ModelCard(name="small random CNN"))
        # threshold at the median face, so that about half the faces can flip (counterfactual work is timed too)
        with torch.no_grad():
            from iceaudit.audit.sample import sample_faces

            clf.model.to(args.device)
            clf.device = torch.device(args.device)
            ws = sample_faces(G, args.n, psi=1.0, device=args.device).ws
            base = torch.cat([clf.decision_score(G.synthesis(ws[i:i + 8])) for i in range(0, len(ws), 8)])
        clf.card.threshold = float(base.median())
        runs = [timed_audit(G, bank, clf, args, partial, tmp / f"audit-{partial}") for partial in (True, False)]
    same = float(np.max(np.abs(runs[0]["scores"] - runs[1]["scores"])))
    report = {
        "generator": ("random weights, demo shape 64x64 (channel_base 2048, channel_max 256, mapping 4x128)"
                      if args.shape == "demo" else "random weights, config-f 1024 shape"),
        "device": str(torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"),
        "parameters": sum(p.numel() for p in G.parameters()),
        "subspaces": args.subspaces.split(",") if args.subspaces else bank.ids,
        "n": args.n, "steps": args.steps, "null": args.null, "threads": args.threads,
        "load_average_at_end": os.getloadavg(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "platform": platform.platform(),
        "partial": {k: v for k, v in runs[0].items() if k != "scores"},
        "full": {k: v for k, v in runs[1].items() if k != "scores"},
        "speedup_partial_over_full_wall": round(runs[1]["wall_s"] / runs[0]["wall_s"], 2),
        "speedup_partial_over_full_cpu": round(runs[1]["cpu_s"] / runs[0]["cpu_s"], 2),
        "max_abs_score_difference_partial_vs_full": same,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
