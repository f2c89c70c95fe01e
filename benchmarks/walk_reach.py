"""How far does each bank walk go beyond the faces the generator samples? (issue 17)

Along each subspace's walk direction, the sampled faces' latent coordinate has a spread (its
SD) and a range; a walk of alpha units moves it by alpha * unit_norm. Printed per subspace:
one unit in latent SDs, the largest |z| among the sampled faces, and how many units the
median face can walk each way before its coordinate leaves the sampled range. A walk that
goes further extrapolates along its own direction (it may still render a face: S edits often
do; this is the latent half of the question "does the walk stay on the manifold?").

    PYTHONPATH=. python benchmarks/walk_reach.py --bank subspace_bank/demo --generator demo --faces 512
"""
from __future__ import annotations

import argparse

import torch

from iceaudit.bank.build import bank_latents
from iceaudit.bank.format import load_bank
from iceaudit.bank.latent import LatentSpace
from iceaudit.stylegan2.loaders import load_generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", default="subspace_bank/demo")
    ap.add_argument("--generator", default="demo")
    ap.add_argument("--faces", type=int, default=512)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(2)
    G, bank = load_generator(args.generator), load_bank(args.bank)
    ws = bank_latents(G, args.faces, args.seed)
    print("| subspace | step range | one unit in latent SDs | largest sampled abs z | median reach (units) |")
    print("|---|---|---|---|---|")
    for s in bank.subspaces:
        with torch.no_grad():
            c = LatentSpace(G, s.space, list(s.layers)).encode(ws) @ s.direction
        sd = float(c.std())
        z_max = float(((c - c.mean()) / sd).abs().max())
        down = float(((c - c.min()) / s.unit_norm).median())
        up = float(((c.max() - c) / s.unit_norm).median())
        print(f"| {s.id} | {s.step_range[0]:+g} .. {s.step_range[1]:+g} | {s.unit_norm / sd:.2f} | {z_max:.2f} "
              f"| −{down:.2f} / +{up:.2f} |")


if __name__ == "__main__":
    main()
