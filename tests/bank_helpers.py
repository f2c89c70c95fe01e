"""Synthetic eyes and criteria with known answers for the bank tests."""
from __future__ import annotations

import torch

from iceaudit.criteria.base import Criterion


class HalfParser:
    """A parser that calls the left half of the image "skin" and the right half "hair"."""

    labels = ["background", "skin", "hair"]

    def __call__(self, x):
        n, _, h, w = x.shape
        logits = torch.zeros(n, 3, h, w, dtype=x.dtype)
        logits[:, 1, :, : w // 2] = 1
        logits[:, 2, :, w // 2 :] = 1
        return logits


class BlobLandmarks(torch.nn.Module):
    """A differentiable 'landmark model': K soft-argmax points of fixed random filters of the image."""

    def __init__(self, k: int = 6, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.num_points = k
        self.w = torch.nn.Parameter(torch.randn(k, 3, 3, 3, generator=g), requires_grad=False)

    def forward(self, x):
        h = torch.nn.functional.conv2d(x, self.w, padding=1) * 4
        n, k, hh, ww = h.shape
        p = h.flatten(2).softmax(-1).reshape(n, k, hh, ww)
        xs = (torch.arange(ww, dtype=x.dtype) + 0.5) / ww
        ys = (torch.arange(hh, dtype=x.dtype) + 0.5) / hh
        return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)


class Projection(Criterion):
    """y_act = <image, a>, y_sup = <image, b> for fixed random images a, b: gradients known by autograd."""

    def __init__(self, res: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(1, 3, res, res, generator=g)
        self.b = torch.randn(1, 3, res, res, generator=g)
        self.name = "projection"

    def evaluate(self, images, ctx):
        return (images * self.a).flatten(1).sum(1, keepdim=True), (images * self.b).flatten(1).sum(1, keepdim=True)
