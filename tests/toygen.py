"""A tiny StyleGAN2-shaped generator implementing iceaudit's generator contract.

Used by the bank tests until (and alongside) the real engine: same style-layer
names, ws indices, styles / synthesis_from_styles / pack / partial synthesis.
Random weights, a few thousand parameters, runs in milliseconds.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class StyleLayer:
    name: str
    channels: int
    ws_index: int


class ModConv(nn.Module):
    def __init__(self, w_dim, cin, cout, k, up=False, demod=True):
        super().__init__()
        self.affine = nn.Linear(w_dim, cin)
        nn.init.ones_(self.affine.bias)
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.up, self.demod, self.k = up, demod, k

    def forward(self, x, style):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        w = self.weight / (self.weight[0].numel() ** 0.5)
        y = F.conv2d(x * style[:, :, None, None], w, padding=self.k // 2)
        if self.demod:
            d = ((w[None] * style[:, None, :, None, None]) ** 2).sum([2, 3, 4]).add(1e-8).rsqrt()
            y = y * d[:, :, None, None]
            return F.leaky_relu(y + self.bias[None, :, None, None], 0.2)
        return y + self.bias[None, :, None, None]


class PrefixState:
    def __init__(self, x, img, index):
        self.x, self.img, self.index = x, img, index

    def repeat_interleave(self, k):
        return PrefixState(self.x.repeat_interleave(k, 0), None if self.img is None else self.img.repeat_interleave(k, 0), self.index)


class ToyGenerator(nn.Module):
    def __init__(self, z_dim=8, w_dim=8, img_resolution=16, channels=None, seed=0):
        super().__init__()
        g = torch.random.fork_rng()
        with g:
            torch.manual_seed(seed)
            self.z_dim, self.c_dim, self.w_dim = z_dim, 0, w_dim
            self.img_resolution, self.img_channels = img_resolution, 3
            channels = channels or {4: 12, 8: 10, 16: 8, 32: 6, 64: 6}
            self.mapping_net = nn.Sequential(nn.Linear(z_dim, w_dim), nn.LeakyReLU(0.2), nn.Linear(w_dim, w_dim))
            self.const = nn.Parameter(torch.randn(channels[4], 4, 4))
            self.layers = nn.ModuleDict()
            self._style_layers: list[StyleLayer] = []
            res, w_idx = 4, 0
            while res <= img_resolution:
                c = channels[res]
                if res == 4:
                    self._add("b4.conv1", ModConv(w_dim, c, c, 3), c, w_idx)
                else:
                    cp = channels[res // 2]
                    self._add(f"b{res}.conv0", ModConv(w_dim, cp, c, 3, up=True), cp, w_idx)
                    self._add(f"b{res}.conv1", ModConv(w_dim, c, c, 3), c, w_idx + 1)
                    w_idx += 1
                self._add(f"b{res}.torgb", ModConv(w_dim, c, 3, 1, demod=False), c, w_idx + 1)
                w_idx += 1
                res *= 2
            self.num_ws = w_idx + 1
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def _add(self, name, module, channels, ws_index):
        self.layers[name.replace(".", "_")] = module
        self._style_layers.append(StyleLayer(name, channels, ws_index))

    @property
    def style_layers(self):
        return list(self._style_layers)

    def mapping(self, z, c=None, psi=1.0, truncation_cutoff=None):
        w = self.mapping_net(z)
        w = self.w_avg + psi * (w - self.w_avg)
        return w[:, None, :].repeat(1, self.num_ws, 1)

    def styles(self, ws):
        return {l.name: self.layers[l.name.replace(".", "_")].affine(ws[:, l.ws_index]) for l in self._style_layers}

    def pack_styles(self, styles):
        return torch.cat([styles[l.name] for l in self._style_layers], dim=1)

    def unpack_styles(self, vec):
        out, o = {}, 0
        for l in self._style_layers:
            out[l.name] = vec[:, o : o + l.channels]
            o += l.channels
        return out

    def _run(self, styles, x, img, start_index, stop_index=None):
        layers = self._style_layers[start_index:stop_index]
        for l in layers:
            m = self.layers[l.name.replace(".", "_")]
            if l.name.endswith("torgb"):
                y = m(x, styles[l.name])
                img = y if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + y
            else:
                x = m(x, styles[l.name])
        return x, img

    def synthesis_from_styles(self, styles, noise_mode="const"):
        n = next(iter(styles.values())).shape[0]
        x = self.const[None].expand(n, -1, -1, -1)
        return self._run(styles, x, None, 0)[1]

    def synthesis(self, ws, noise_mode="const"):
        return self.synthesis_from_styles(self.styles(ws), noise_mode)

    def forward(self, z, c=None, psi=1, truncation_cutoff=None, noise_mode="const"):
        return self.synthesis(self.mapping(z, c, psi, truncation_cutoff), noise_mode)

    def synthesis_prefix(self, styles, start, noise_mode="const"):
        names = [l.name for l in self._style_layers]
        idx = names.index(start)
        n = next(iter(styles.values())).shape[0]
        x = self.const[None].expand(n, -1, -1, -1)
        x, img = self._run(styles, x, None, 0, idx)
        return PrefixState(x, img, idx)

    def synthesis_suffix(self, state, styles):
        return self._run(styles, state.x, state.img, state.index)[1]

    def fingerprint(self):
        h = hashlib.sha256()
        for k, v in sorted(self.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
