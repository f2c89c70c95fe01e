"""Tiny synthetic audit world with known truth: a random-weight StyleGAN2
generator, a bank of random orthonormal bases (W, W+, S) plus one direction
built to drive a known classifier, and TorchScript classifiers whose
dependence is known by construction."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tiny_stylegan
import torch

from iceaudit.audit.classifier import ModelCard, load_classifier
from iceaudit.audit.sample import seed_to_z
from iceaudit.bank.format import Bank, Subspace, save_bank
from iceaudit.stylegan2.networks import Generator

W_DIM = 64


def tiny_generator(seed: int = 0) -> Generator:
    return tiny_stylegan.tiny_generator(seed, w_dim=W_DIM)


class MeanRed(torch.nn.Module):
    """Score = mean of the red channel (of rows top..bottom): a 'redness' classifier."""

    def __init__(self, top: int = 0, bottom: int = 10_000) -> None:
        super().__init__()
        self.top, self.bottom = top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, self.top:self.bottom].mean(dim=(1, 2))


class Constant(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)) * 0.0 + 0.3


class RandomNet(torch.nn.Module):
    """A random-weight conv net: depends on the image, on no semantic in particular."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def save_script(module: torch.nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    return path


def _random_basis(dim: int, k: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, k, generator=gen, dtype=torch.float64))
    return q.T.contiguous().float()


def redness_direction(G: Generator, n: int = 32) -> torch.Tensor:
    """Unit W direction along which mean red rises fastest (mean gradient over faces)."""
    ws = G.mapping(seed_to_z(range(1000, 1000 + n), G.z_dim)).detach()
    w = ws[:, 0].clone().requires_grad_(True)
    img = G.synthesis(w[:, None].repeat(1, G.num_ws, 1))
    img[:, 0].mean().backward()
    g = w.grad.sum(0)
    return g / g.norm()


def synthetic_bank(G: Generator, with_driver: bool = True, seed: int = 0, unit_norm: float = 1.0,
                   s_layers: tuple[str, ...] = ("b8.conv1", "b8.torgb")) -> Bank:
    gen = torch.Generator().manual_seed(seed)
    s_layers = list(s_layers)
    s_dim = sum(l.channels for l in G.style_layers if l.name in s_layers)

    def sub(sid, name, space, layers, basis, tags=(), unit_norm=unit_norm):
        return Subspace(id=sid, name=name, description=f"synthetic {name}", tags=list(tags), space=space,
                        layers=layers, basis=basis, unit="1 synthetic unit", unit_norm=unit_norm,
                        step_range=(-2.0, 2.0), method="pca", criterion="none")

    subs = []
    if with_driver:
        d = redness_direction(G)
        rest = _random_basis(G.w_dim, 3, gen)
        rest = rest - (rest @ d)[:, None] * d[None]  # keep rows orthogonal to d, then re-orthonormalise
        basis = torch.linalg.qr(torch.cat([d[None], rest]).T.double())[0].T.float()
        basis[0] = d  # QR may flip the sign of row 0; the walk must go towards more red
        subs.append(sub("redness", "redness", "W", [], basis, tags=["protected"]))
    subs.append(sub("w_random", "random W", "W", [], _random_basis(G.w_dim, 3, gen)))
    subs.append(sub("wplus_random", "random W+ (ws 2-3)", "W+", [2, 3], _random_basis(G.w_dim, 2, gen)))
    subs.append(sub("s_random", "random S (b8)" if s_layers[0] == "b8.conv1" else f"random S ({s_layers[0]})", "S", s_layers, _random_basis(s_dim, 2, gen), unit_norm=3.0))
    return Bank(name="synthetic", generator_fingerprint=G.fingerprint(), subspaces=subs)


def base_scores(G: Generator, module: torch.nn.Module, n: int, seed: int = 0) -> np.ndarray:
    with torch.no_grad():
        img = G.synthesis(G.mapping(seed_to_z(range(seed, seed + n), G.z_dim)))
        return module(((img.clamp(-1, 1) + 1) / 2)).reshape(len(img), -1)[:, 0].numpy()


def redness_classifier(G: Generator, tmp: Path, n: int):
    """Mean-red TorchScript classifier with its threshold at the median face."""
    module = MeanRed()
    path = save_script(module, tmp / "red.pt")
    thr = float(np.median(base_scores(G, module, n)))
    return load_classifier(path, ModelCard(name="redness", head="logit", threshold=thr, positive_class="red"))


def write_world(tmp: Path, n: int = 16) -> dict[str, Path]:
    """Generator weights, bank dir and classifier + card on disk (for CLI / subprocess tests)."""
    from iceaudit.stylegan2.loaders import save_native

    G = tiny_generator()
    save_native(G, tmp / "gen")
    save_bank(synthetic_bank(G), tmp / "bank")
    save_script(MeanRed(), tmp / "red.pt")
    thr = float(np.median(base_scores(G, MeanRed(), n)))
    (tmp / "red.toml").write_text(f'name = "redness"\nhead = "logit"\nthreshold = {thr!r}\npositive_class = "red"\n')
    return {"generator": tmp / "gen.safetensors", "bank": tmp / "bank", "classifier": tmp / "red.pt",
            "card": tmp / "red.toml"}
