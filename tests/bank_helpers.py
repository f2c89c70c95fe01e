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


class _State:
    def __init__(self, start, img):
        self.start, self.img = start, img

    def repeat_interleave(self, k):
        return _State(self.start, None if self.img is None else self.img.repeat_interleave(k, 0))


class PatternGenerator(torch.nn.Module):
    """A generator contract stand-in with planted semantics: image = Σ_c s_c · P_c.

    Conv layer ``b4.conv1`` (4 channels): channel 0 paints only the left half
    (HalfParser's "skin"), channel 1 only the right half ("hair"), channels 2-3 the
    whole image. ``b4.torgb`` (4 channels) adds global colour. Styles are an affine
    map of w in which w_k drives conv channel k most.
    """

    z_dim = w_dim = 4
    num_ws = 2
    img_resolution = 16
    c_dim = 0

    def __init__(self, seed: int = 0):
        super().__init__()
        from types import SimpleNamespace

        g = torch.Generator().manual_seed(seed)
        r = self.img_resolution
        p = torch.zeros(4, 3, r, r)
        p[0, :, :, : r // 2] = torch.rand(3, 1, 1, generator=g) + 0.5  # a flat colour, left half only
        p[1, :, :, r // 2 :] = torch.rand(3, 1, 1, generator=g) + 0.5
        p[2:] = torch.rand(2, 3, 1, 1, generator=g) * 0.3
        self.register_buffer("conv_patterns", p)
        self.register_buffer("rgb_patterns", torch.rand(4, 3, 1, 1, generator=g).expand(4, 3, r, r).clone() * 0.2)
        self.register_buffer("A_conv", torch.eye(4) + 0.1 * torch.randn(4, 4, generator=g))
        self.register_buffer("A_rgb", torch.randn(4, 4, generator=g) * 0.5)
        self._layers = [SimpleNamespace(name="b4.conv1", channels=4, ws_index=0),
                        SimpleNamespace(name="b4.torgb", channels=4, ws_index=1)]

    @property
    def style_layers(self):
        return list(self._layers)

    def mapping(self, z, c=None, psi=1.0, truncation_cutoff=None):
        return z[:, None, :].repeat(1, self.num_ws, 1)

    def styles(self, ws):
        return {"b4.conv1": ws[:, 0] @ self.A_conv + 1, "b4.torgb": ws[:, 1] @ self.A_rgb + 1}

    def _conv(self, s):
        return (s[:, :, None, None, None] * self.conv_patterns).sum(1)

    def _rgb(self, s):
        return (s[:, :, None, None, None] * self.rgb_patterns).sum(1)

    def synthesis_from_styles(self, styles, noise_mode="const"):
        return self._conv(styles["b4.conv1"]) + self._rgb(styles["b4.torgb"]) - 1

    def synthesis(self, ws, noise_mode="const"):
        return self.synthesis_from_styles(self.styles(ws))

    def synthesis_prefix(self, styles, start, noise_mode="const"):
        return _State(start, None if start == "b4.conv1" else self._conv(styles["b4.conv1"]))

    def synthesis_suffix(self, state, styles):
        conv = self._conv(styles["b4.conv1"]) if state.start == "b4.conv1" else state.img
        return conv + self._rgb(styles["b4.torgb"]) - 1

    def fingerprint(self):
        return "pattern-generator"
