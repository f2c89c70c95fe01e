"""What the safe classifier routes cost: the same FaceLab classifier as TorchScript
(needs --trust-classifier), as ONNX (onnxruntime) and as state dict + factory, in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_trust.py --n 32 --json benchmarks/bench_trust.json

Each route audits the same faces (walks and statistics; no images, no baselines) with one
torch thread; reported: wall time, classified images per second, and the largest score
difference from the TorchScript route (ONNX rounds differently; the module route should
match exactly).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


class Wrapped(torch.nn.Module):
    """The TorchScript network's weights in a plain module (the state-dict route's network)."""

    def __init__(self, scripted: torch.nn.Module) -> None:
        super().__init__()
        self.inner = scripted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--subspaces", default="skin_tone,smile,background")
    ap.add_argument("--classifier", default="smiling_skin_shortcut")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from iceaudit.api import load_bank, load_classifier
    from iceaudit.audit.classifier import load_card, wrap_classifier
    from iceaudit.audit.runner import AuditSettings, run_audit
    from iceaudit.resources import demo_classifier
    from iceaudit.stylegan2.loaders import load_generator

    G, bank = load_generator("demo"), load_bank("demo")
    pt, card_path = demo_classifier(args.classifier)
    card = load_card(card_path)
    scripted = load_classifier(pt, card)
    tmp = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    onnx_path = tmp / "clf.onnx"
    size = card.input_size or G.img_resolution
    size = size if isinstance(size, (list, tuple)) else (size, size)
    torch.onnx.export(scripted.model, (torch.zeros(1, 3, *size),), str(onnx_path), input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    routes = {
        "torchscript (--trust-classifier)": scripted,
        "onnx (onnxruntime)": load_classifier(onnx_path, card),
        "nn.Module (what a factory builds)": wrap_classifier(Wrapped(scripted.model), card),
    }
    settings = AuditSettings.of(n=args.n, seed=0, progress=False, subspaces=args.subspaces.split(","))
    rows, reference = [], None
    for name, clf in routes.items():
        t0 = time.perf_counter()
        result = run_audit(clf, G, bank, settings)
        seconds = time.perf_counter() - t0
        scores = torch.tensor(result.results["score"].to_numpy())
        reference = scores if reference is None else reference
        rows.append({"route": name, "seconds": round(seconds, 2),
                     "images_per_s": round(len(result.results) / seconds, 1),
                     "max_abs_score_diff_vs_torchscript": float((scores - reference).abs().max()),
                     "top_driver": result.drivers[0].subspace})
    base = rows[0]["seconds"]
    for r in rows:
        r["time_vs_torchscript"] = round(r["seconds"] / base, 3)
        print(f"{r['route']:36s} {r['seconds']:7.2f} s  {r['images_per_s']:8.1f} img/s  "
              f"x{r['time_vs_torchscript']:.3f}  max|Δscore| {r['max_abs_score_diff_vs_torchscript']:.2e}  "
              f"top {r['top_driver']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "subspaces": args.subspaces, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
