"""GANSpace-style unsupervised baseline: principal directions of W over sampled faces."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


def principal_directions(G: Generator, n: int = 2000, k: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k principal directions [k, w_dim] of w = mapping(z) and their variances [k]."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = G.mapping(torch.randn(n, G.z_dim, generator=g))[:, 0].double()
    w = w - w.mean(0)
    _, s, vt = torch.linalg.svd(w, full_matrices=False)
    var = s**2 / (n - 1)
    vt = vt[:k]
    idx = vt.abs().argmax(1)
    vt = vt * torch.sign(vt[torch.arange(len(vt)), idx])[:, None]
    return vt.float(), var[:k].float()
