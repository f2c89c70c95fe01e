"""Measure the FaceLab demo world on the shipped demo generator.

    PYTHONPATH=. python benchmarks/demo_world.py --grid docs/demo_generator_samples.png

Prints markdown tables (pasted into docs/facelab.md):
- generator fidelity: mean |G(z) - render(phi(z))| per part on 256 held-out z, and the
  landmark error of G(z): the FaceLab landmark net on G(z) against render(phi(z))'s
  true landmarks (beside the same net on the renders themselves, its own error);
- the landmark net and parser on demo-generator samples vs on renders;
- each planted classifier's accuracy on renders and on generator samples (labels from phi(z));
- the style knobs (`iceaudit facelab train-knobs`): per knob, the factor reader's change of
  every factor per knob unit on 64 faces (in prior SDs), own factor and the largest other.
With --grid: 16 held-out z, render(phi(z)) above G(z), as one PNG.
With --knob-strip: 3 faces per knob, the knob set to -2, -1, 0, +1, +2 units, as one PNG.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from iceaudit.audit.classifier import load_card, load_classifier  # noqa: E402
from iceaudit.facelab import analysis, classifiers  # noqa: E402
from iceaudit.facelab.train.knobs import Knob, _set_knobs, knob_effects  # noqa: E402
from iceaudit.facelab.latent import render_z, sample_z  # noqa: E402
from iceaudit.facelab.reader import load_reader  # noqa: E402
from iceaudit.facelab.render import to_uint8  # noqa: E402
from iceaudit.facelab.sheet import grid  # noqa: E402
from iceaudit.facelab.train.generator import fidelity  # noqa: E402
from iceaudit.stylegan2.loaders import load_generator  # noqa: E402

PLANTED = ("smiling", "smiling_skin_shortcut", "eyeglasses_background_shortcut")  # random_init has no label


def sample_grid(G, path: Path, n: int = 16, seed: int = 31_337) -> None:
    z = sample_z(n, seed)
    with torch.no_grad():
        fake = G(z, None, noise_mode="const").clamp(-1, 1)
    real = render_z(z, resolution=G.img_resolution).images
    tiles = np.concatenate([to_uint8(real), to_uint8(fake)])
    img = grid(tiles, cols=n // 2)
    from PIL import Image

    big = Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.NEAREST)
    big.save(path)
    print(f"wrote {path}: rows 1-2 render(phi(z)), rows 3-4 G(z) for the same z")


def knob_strip(G, knobs: list, path: Path, n_faces: int = 3, seed: int = 5) -> None:
    from PIL import Image

    z = sample_z(n_faces, seed)
    units = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    tiles = []
    with torch.no_grad():
        styles = G.styles(G.mapping(z, None, skip_w_avg_update=True))
        for k in range(len(knobs)):
            for i in range(n_faces):
                face = {name: v[i:i + 1].repeat(len(units), 1) for name, v in styles.items()}
                tiles.append(G.synthesis_from_styles(_set_knobs(face, knobs, torch.full((len(units),), k), units)))
    img = grid(to_uint8(torch.cat(tiles)).numpy(), cols=len(units))
    Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.NEAREST).save(path)
    print(f"wrote {path}: {n_faces} rows per knob (" + ", ".join(k.factor for k in knobs) + "), units -2..+2")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", default="demo")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--grid", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--knob-strip", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    G = load_generator(args.generator).eval()
    t0 = time.time()
    out: dict = {"fidelity": fidelity(G, n=args.n)}
    lm, parser = analysis.load_landmarker(), analysis.load_parser()
    out["nets_on_renders"] = analysis.evaluate_on_renders(lm, parser, n=args.n)
    out["nets_on_generator"] = analysis.evaluate_on_generator(G, lm, parser, n=args.n)
    out["classifiers"] = {}
    for name in PLANTED:
        d = ROOT / "examples" / "facelab"
        clf = load_classifier(str(d / f"{name}.pt"), load_card(str(d / f"{name}.toml")))
        score = torch.no_grad()(clf.decision_score)
        out["classifiers"][name] = {
            "renders": classifiers.accuracy_on_renders(score, name),
            "generator": classifiers.accuracy_on_generator(score, name, G),
        }
    knobs = [Knob(**k) for k in getattr(G, "provenance", {}).get("metadata", {}).get("style_knobs", [])]
    if knobs:
        out["knobs"] = knob_effects(G, knobs, load_reader(), n=64)
    out["seconds"] = round(time.time() - t0, 1)

    f = out["fidelity"]
    print("| part | mean abs error |\n|---|---:|")
    for k, v in f.items():
        print(f"| {k} | {v:.3f} |")
    print("\n| eyes | on renders | on G(z) |\n|---|---:|---:|")
    lr, lg = out["nets_on_renders"]["landmark_error_px"], out["nets_on_generator"]["landmark_error_px"]
    for k in lr:
        print(f"| landmark error {k} (px at 64) | {lr[k]:.3f} | {lg[k]:.3f} |")
    pr, pg = out["nets_on_renders"]["parsing_iou"], out["nets_on_generator"]["parsing_iou"]
    for k in pr:
        print(f"| parser IoU {k} | {pr[k]:.3f} | {pg.get(k, float('nan')):.3f} |")
    print("\n| classifier | accuracy on renders | accuracy on G(z) |\n|---|---:|---:|")
    for name, acc in out["classifiers"].items():
        print(f"| `{name}` | {acc['renders']['accuracy']:.3f} | {acc['generator']['accuracy']:.3f} |")
    if knobs:
        print("\n| knob | style channel | own factor per knob unit (prior SDs) | largest other factor |\n|---|---|---:|---|")
        for k in knobs:
            row = out["knobs"][k.factor]
            other = max((f for f in row if f != k.factor), key=lambda f: abs(row[f]))
            print(f"| {k.factor} | `{k.name}` | {row[k.factor]:+.2f} | {other} {row[other]:+.2f} |")
    print(f"\n({out['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.grid:
        sample_grid(G, args.grid)
    if args.knob_strip and knobs:
        knob_strip(G, knobs, args.knob_strip)


if __name__ == "__main__":
    main()
