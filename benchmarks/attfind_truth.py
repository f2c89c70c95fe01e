"""What do AttFind's channels move? Single style channels against FaceLab's true factors.

    PYTHONPATH=. python benchmarks/attfind_truth.py [CLASSIFIER] [--faces 16] [--screen 256] [--generator FILE]

For a planted FaceLab classifier (default smiling_skin_shortcut) on the demo generator (or
`--generator`, e.g. one tuned by `iceaudit facelab train-knobs`):
1. AttFind's greedy top-5 per target class (`iceaudit.audit.attfind`, gradient screening
   to `--screen` channels, then exact effects);
2. for the 12 channels with the largest mean |effect|, what moving each to its observed
   min / max does to the true factors (FaceLab factor reader, mean change in SDs of the
   factor over the faces, top three);
3. which of the generator's style knobs (`iceaudit facelab train-knobs`) AttFind picked;
4. how concentrated skin tone is in single channels: the first-order change of the
   reader's skin tone when each conv style channel moves to its min / max (gradient x
   shift, mean over faces, in SDs), the largest five and the sum over all channels.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from iceaudit.audit.attfind import greedy_select, style_effects
from iceaudit.audit.classifier import load_card, load_classifier
from iceaudit.audit.style_space import conv_channels
from iceaudit.facelab.factors import FACTOR_NAMES
from iceaudit.facelab.reader import FactorTruth, load_reader
from iceaudit.stylegan2.loaders import load_generator

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("classifier", nargs="?", default="smiling_skin_shortcut")
    ap.add_argument("--faces", type=int, default=16)
    ap.add_argument("--screen", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--generator", default="demo", help="generator file (default: the shipped demo generator)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = load_generator(args.generator).eval().requires_grad_(False)
    d = ROOT / "examples" / "facelab"
    clf = load_classifier(d / f"{args.classifier}.pt", load_card(d / f"{args.classifier}.toml"))
    with torch.no_grad():
        ws = G.mapping(torch.randn(args.faces, G.z_dim, generator=torch.Generator().manual_seed(0)))
    t0 = time.time()
    eff = style_effects(clf.decision_score, G, ws, screen=args.screen, batch_size=128)
    print(f"{args.classifier}: {args.faces} faces, {len(eff.channels)} conv channels, {int(eff.evaluated.sum())} "
          f"evaluated exactly, {eff.renders} renders, {time.time() - t0:.0f} s")
    knobs = {f"{k['layer']}:{k['channel']}": k["factor"] for k in G.provenance.get("metadata", {}).get("style_knobs", [])}
    print("style knobs: " + (", ".join(f"{f} = {c}" for c, f in knobs.items()) or "none"))

    def named(channel: str) -> str:
        return f"{channel} [knob: {knobs[channel]}]" if channel in knobs else channel

    for target in ("positive", "negative"):
        picks = greedy_select(eff, clf.threshold, target, 5)
        print(f"AttFind top-5 toward {target}: " + ", ".join(f"{named(p['channel'])} ({p['direction']}, {p['mean_effect']:+.3f})" for p in picks))

    truth = FactorTruth()
    styles = G.styles(ws)
    with torch.no_grad():
        f0 = truth(G.synthesis_from_styles(styles))
    strength = eff.effects.abs().mean(0).amax(0)
    print("\n| channel | mean score change to min / max | true factors moved, to min | to max |\n|---|---|---|---|")
    for c in torch.argsort(strength, descending=True)[:12].tolist():
        ch = eff.channels[c]
        cells = []
        for ext in (eff.minimum[c], eff.maximum[c]):
            edited = dict(styles)
            s = styles[ch.layer].clone()
            s[:, ch.channel] = ext
            edited[ch.layer] = s
            with torch.no_grad():
                f1 = truth(G.synthesis_from_styles(edited))
            dd = {k: float(truth.difference(k, f1[k] - f0[k]).mean() / f0[k].std()) for k in f0}
            cells.append(", ".join(f"{k} {dd[k]:+.2f}" for k in sorted(dd, key=lambda k: -abs(dd[k]))[:3]))
        print(f"| {named(ch.name)} | {float(eff.effects[:, 0, c].mean()):+.3f} / {float(eff.effects[:, 1, c].mean()):+.3f} | "
              f"{cells[0]} | {cells[1]} |")

    reader = load_reader().requires_grad_(False)
    sv = G.pack_styles(styles).detach().clone().requires_grad_(True)
    skin = reader(G.synthesis_from_styles(G.unpack_styles(sv)).clamp(-1, 1))[:, FACTOR_NAMES.index("skin_tone")]
    sd = float(skin.detach().std())
    (grad,) = torch.autograd.grad(skin.sum(), sv)
    chans = conv_channels(G)
    idx = torch.tensor([c.index for c in chans])
    s = sv.detach()[:, idx]
    est = torch.stack([grad[:, idx] * (s.min(0).values - s), grad[:, idx] * (s.max(0).values - s)], 1).mean(0) / sd
    best = est.abs().amax(0)
    top = torch.argsort(best, descending=True)[:5].tolist()
    print("\nSkin tone in single channels (first order, SDs of the read skin tone, min / max):")
    print(", ".join(f"{named(chans[c].name)} {float(est[0, c]):+.3f} / {float(est[1, c]):+.3f}" for c in top))
    print(f"sum over all {len(chans)} conv channels of the larger |change|: {float(best.sum()):.2f} SD")


if __name__ == "__main__":
    main()
