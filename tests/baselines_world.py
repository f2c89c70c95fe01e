"""A tiny world for the baseline tests: a contract-shaped style generator,
synthetic classifiers whose dependence is known, and synthetic label maps.

`TinyStyleGenerator` follows the generator contract in docs (mapping, style
layers with official names, styles, synthesis_from_styles, pack/unpack,
partial synthesis) with random weights at 16x16, so the baselines can be
tested before (and independently of) the real StyleGAN2 engine.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from iceaudit.bank.format import Bank, Subspace

LABELS = ["background", "skin", "hair", "brows", "eyes", "nose", "mouth", "glasses", "beard"]


@dataclass
class StyleLayer:
    name: str
    channels: int
    ws_index: int
    kind: str  # "conv" or "torgb"
    in_channels: int


@dataclass
class PrefixState:
    """Cached activations before layer `start` (x, rgb) for a batch of faces."""

    start: int
    x: torch.Tensor | None
    rgb: torch.Tensor | None

    def repeat_interleave(self, k: int) -> "PrefixState":
        rep = lambda t: None if t is None else t.repeat_interleave(k, dim=0)  # noqa: E731
        return PrefixState(self.start, rep(self.x), rep(self.rgb))


class TinyStyleGenerator(nn.Module):
    """4 -> 8 -> 16 px, conv layers modulated by per-channel styles (affine of w)."""

    def __init__(self, w_dim: int = 8, channels: int = 6, seed: int = 0, style_spread: float = 0.3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.z_dim = self.w_dim = w_dim
        self.c_dim = 0
        self.img_resolution, self.img_channels = 16, 3
        c = channels
        spec = [  # name, channels (= in channels the style scales), ws index, kind
            ("b4.conv1", c, 0, "conv"), ("b4.torgb", c, 1, "torgb"),
            ("b8.conv0", c, 1, "conv"), ("b8.conv1", c, 2, "conv"), ("b8.torgb", c, 3, "torgb"),
            ("b16.conv0", c, 3, "conv"), ("b16.conv1", c, 4, "conv"), ("b16.torgb", c, 5, "torgb"),
        ]
        self.style_layers = [StyleLayer(n, ch, i, k, ch) for n, ch, i, k in spec]
        self.num_ws = 6
        self.mapping_net = nn.Sequential(nn.Linear(w_dim, w_dim), nn.LeakyReLU(0.2), nn.Linear(w_dim, w_dim))
        self.const = nn.Parameter(torch.randn(1, c, 4, 4, generator=g))
        self.affine = nn.ModuleDict()
        self.weight = nn.ParameterDict()
        for layer in self.style_layers:
            key = layer.name.replace(".", "_")
            aff = nn.Linear(w_dim, layer.channels)
            with torch.no_grad():
                aff.weight.copy_(torch.randn(layer.channels, w_dim, generator=g) * style_spread / w_dim**0.5)
                aff.bias.fill_(1.0)
            self.affine[key] = aff
            out_ch = 3 if layer.kind == "torgb" else c
            k = 1 if layer.kind == "torgb" else 3
            self.weight[key] = nn.Parameter(torch.randn(out_ch, layer.channels, k, k, generator=g) / (layer.channels * k * k) ** 0.5)
        for p in self.mapping_net.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim == 2 else 0.1))
        self.requires_grad_(False)

    # --- latents -------------------------------------------------------------
    def mapping(self, z, c=None, psi=1.0, truncation_cutoff=None):
        w = self.mapping_net(z)
        return w[:, None, :].repeat(1, self.num_ws, 1)

    def styles(self, ws):
        assert ws.shape[1:] == (self.num_ws, self.w_dim)
        return {l.name: self.affine[l.name.replace(".", "_")](ws[:, l.ws_index]) for l in self.style_layers}

    def pack_styles(self, styles):
        return torch.cat([styles[l.name] for l in self.style_layers], dim=1)

    def unpack_styles(self, vec):
        out, i = {}, 0
        for l in self.style_layers:
            out[l.name] = vec[:, i : i + l.channels]
            i += l.channels
        assert i == vec.shape[1]
        return out

    # --- synthesis -----------------------------------------------------------
    def _run(self, styles, start: int, stop: int, x, rgb):
        for i in range(start, stop):
            layer = self.style_layers[i]
            w = self.weight[layer.name.replace(".", "_")]
            s = styles[layer.name][:, :, None, None]
            if layer.kind == "torgb":
                y = F.conv2d(x * s, w)
                rgb = y if rgb is None else rgb + y
                if i + 1 < len(self.style_layers):
                    rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            else:
                if layer.name.endswith("conv0"):
                    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                x = F.leaky_relu(F.conv2d(x * s, w, padding=1), 0.2)
        return x, rgb

    def synthesis_prefix(self, styles, start: str, noise_mode: str = "const") -> PrefixState:
        idx = [l.name for l in self.style_layers].index(start)
        n = next(iter(styles.values())).shape[0]
        x, rgb = self._run(styles, 0, idx, self.const.expand(n, -1, -1, -1), None)
        return PrefixState(idx, x, rgb)

    def synthesis_suffix(self, state: PrefixState, styles):
        _, rgb = self._run(styles, state.start, len(self.style_layers), state.x, state.rgb)
        return rgb

    def synthesis_from_styles(self, styles, noise_mode: str = "const"):
        return self.synthesis_suffix(self.synthesis_prefix(styles, self.style_layers[0].name), styles)

    def synthesis(self, ws, noise_mode: str = "const"):
        return self.synthesis_from_styles(self.styles(ws))

    def forward(self, z, c=None, psi=1, truncation_cutoff=None, noise_mode="const"):
        return self.synthesis(self.mapping(z))


def sample_ws(G, n: int, seed: int = 0) -> torch.Tensor:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    return G.mapping(z)


def fixed_label_map(n: int, r: int = 16) -> torch.Tensor:
    """Same cartoon layout for every face: background border, skin, hair top,
    brows, eyes, nose, mouth; ids index LABELS."""
    m = torch.zeros(r, r, dtype=torch.long)
    m[2:14, 3:13] = 1  # skin
    m[2:4, 3:13] = 2  # hair
    m[5, 4:7] = 3
    m[5, 9:12] = 3  # brows
    m[6:8, 4:7] = 4
    m[6:8, 9:12] = 4  # eyes
    m[8:10, 7:9] = 5  # nose
    m[11:13, 5:11] = 6  # mouth
    return m.expand(n, r, r).clone()


class FixedParser:
    """Parser contract: images -> [N, R, R] label ids, with `labels`."""

    labels = LABELS

    def __call__(self, images):
        return fixed_label_map(images.shape[0], images.shape[-1])


class RegionReader(nn.Module):
    """Score = a fixed random linear read-out of the pixels of one region only."""

    def __init__(self, region: str = "mouth", r: int = 16, seed: int = 1) -> None:
        super().__init__()
        mask = (fixed_label_map(1, r)[0] == LABELS.index(region)).float()
        w = torch.randn(3, r, r, generator=torch.Generator().manual_seed(seed)) * mask
        self.register_buffer("w", w)

    def forward(self, images):
        return (images * self.w).flatten(1).sum(1)


class SmallCNN(nn.Module):
    """A module classifier with a conv layer (for LayerGradCam)."""

    def __init__(self, seed: int = 2) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 1)

    def forward(self, images):
        x = F.relu(self.conv1(images))
        x = F.relu(self.conv2(x))
        return self.head(x.mean((2, 3)))[:, 0]


def channel_probe(G, ws: torch.Tensor, layer: str, channel: int, eps: float = 0.05) -> nn.Module:
    """A linear image classifier that reads exactly one style channel's effect.

    The mean (over faces) finite-difference image J of every conv style
    channel is computed; the probe P is the least-norm solution of
    <P, J_target> = 1 and <P, J_other> = 0, so to first order only the
    planted channel moves the score.
    """
    styles = G.styles(ws)
    base = G.synthesis_from_styles(styles).flatten(1)
    target, others = None, []
    for l in G.style_layers:
        if l.kind == "torgb":
            continue
        for c in range(l.channels):
            edited = dict(styles)
            s = styles[l.name].clone()
            s[:, c] += eps
            edited[l.name] = s
            jac = ((G.synthesis_from_styles(edited).flatten(1) - base) / eps).mean(0)
            if (l.name, c) == (layer, channel):
                target = jac
            else:
                others.append(jac)
    A = torch.stack([target] + others).double()
    b = torch.zeros(A.shape[0], dtype=torch.double)
    b[0] = 1.0
    P = torch.linalg.pinv(A) @ b  # least-norm solution
    r = G.img_resolution
    return _LinearProbe(P.float().reshape(3, r, r), base.mean(0).reshape(3, r, r))


class _LinearProbe(nn.Module):
    def __init__(self, p, ref) -> None:
        super().__init__()
        self.register_buffer("p", p)
        self.register_buffer("ref", ref)

    def forward(self, images):
        return ((images - self.ref) * self.p).flatten(1).sum(1)


def s_subspace(G, sid: str, entries: list[tuple[str, int]], name: str | None = None, tags=None) -> Subspace:
    """An S-space subspace whose basis rows are unit vectors on the given channels (one layer set)."""
    layers = [l.name for l in G.style_layers if l.name in {e[0] for e in entries}]
    offsets, off = {}, 0
    for l in G.style_layers:
        if l.name in layers:
            offsets[l.name] = off
            off += l.channels
    basis = torch.zeros(len(entries), off)
    for i, (ln, c) in enumerate(entries):
        basis[i, offsets[ln] + c] = 1.0
    return Subspace(sid, name or sid, "test", tags or [], "S", layers, basis, "1 style unit", 1.0, (-2, 2), "literature", "none")


def w_subspace(G, sid: str, seed: int, space: str = "W", layers=None, tags=None) -> Subspace:
    v = torch.randn(1, G.w_dim, generator=torch.Generator().manual_seed(seed))
    v = v / v.norm()
    return Subspace(sid, sid, "test", tags or [], space, layers or [], v, "1 w unit", 1.0, (-2, 2), "pca", "none")


def tiny_bank(G, subspaces) -> Bank:
    return Bank("tiny", "none", list(subspaces))
