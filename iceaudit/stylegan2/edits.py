"""Latent edits in W, W+ and StyleSpace S, shaped for partial synthesis.

Every function takes `alphas`: a number (one edit per sample, batch kept) or a
1-D tensor of K step sizes (K edits per sample; the result has N*K rows,
sample-major, i.e. rows i*K … i*K+K-1 belong to sample i — the order of
`SynthesisState.repeat_interleave(K)`).

Typical walk of K steps along an S direction starting at its first layer:

    styles = G.styles(ws)
    start = first_edited_layer(G, layers=direction.keys())
    state = G.synthesis_prefix(styles, start).repeat_interleave(K)
    images = G.synthesis_suffix(state, edit_styles(styles, direction, alphas))
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch

from iceaudit.stylegan2.networks import Generator

Alphas = float | torch.Tensor


def _alpha_rows(alphas: Alphas, n: int, like: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per-row step sizes [N*K] and K (K = 0 means 'scalar, no repeat')."""
    if isinstance(alphas, torch.Tensor) and alphas.ndim == 1:
        k = int(alphas.shape[0])
        return alphas.to(like.device, like.dtype).repeat(n), k
    return torch.full([n], float(alphas), device=like.device, dtype=like.dtype), 0


def _repeat(t: torch.Tensor, k: int) -> torch.Tensor:
    return t.repeat_interleave(k, dim=0) if k else t


def repeat_styles(styles: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Repeat every sample k times (sample-major), like SynthesisState.repeat_interleave."""
    return {name: s.repeat_interleave(k, dim=0) for name, s in styles.items()}


def edit_w(ws: torch.Tensor, direction: torch.Tensor, alphas: Alphas,
           ws_indices: Iterable[int] | None = None) -> torch.Tensor:
    """W / W+ edit: ws + alpha * direction on the chosen ws indices (all = W).

    ws [N, num_ws, w_dim]; direction [w_dim] (same for every index) or
    [num_ws, w_dim] (per index, W+)."""
    n, num_ws, w_dim = ws.shape
    if direction.ndim == 1:
        direction = direction.reshape(1, w_dim).expand(num_ws, w_dim)
    if tuple(direction.shape) != (num_ws, w_dim):
        raise ValueError(f"direction must be [{w_dim}] or [{num_ws}, {w_dim}], got {list(direction.shape)}")
    mask = torch.zeros([num_ws, 1], dtype=ws.dtype, device=ws.device)
    mask[list(range(num_ws)) if ws_indices is None else list(ws_indices)] = 1
    a, k = _alpha_rows(alphas, n, ws)
    base = _repeat(ws, k)
    rows = base.shape[0]
    return base + a.reshape(rows, 1, 1) * (direction.to(ws) * mask).unsqueeze(0)


def edit_styles(styles: Mapping[str, torch.Tensor], direction: Mapping[str, torch.Tensor],
                alphas: Alphas) -> dict[str, torch.Tensor]:
    """S edit: styles[layer] + alpha * direction[layer] for the layers in
    `direction` ({name: [C]}); other layers are only repeated."""
    unknown = set(direction) - set(styles)
    if unknown:
        raise KeyError(f"direction names unknown style layers {sorted(unknown)}")
    first = next(iter(styles.values()))
    a, k = _alpha_rows(alphas, first.shape[0], first)
    out = {}
    for name, s in styles.items():
        s = _repeat(s, k)
        if name in direction:
            d = direction[name].to(s)
            if tuple(d.shape) != (s.shape[1],):
                raise ValueError(f"direction[{name!r}] must have shape [{s.shape[1]}], got {list(d.shape)}")
            s = s + a.reshape(-1, 1) * d.unsqueeze(0)
        out[name] = s
    return out


def edit_channel(styles: Mapping[str, torch.Tensor], layer: str, channel: int,
                 alphas: Alphas) -> dict[str, torch.Tensor]:
    """S edit of one channel (StyleSpace's `layer_channel`): s[layer][:, channel] += alpha."""
    if layer not in styles:
        raise KeyError(f"unknown style layer {layer!r}")
    c = styles[layer].shape[1]
    if not 0 <= channel < c:
        raise IndexError(f"channel {channel} out of range for {layer} ({c} channels)")
    d = torch.zeros(c, dtype=styles[layer].dtype, device=styles[layer].device)
    d[channel] = 1
    return edit_styles(styles, {layer: d}, alphas)


def first_edited_layer(G: Generator, *, layers: Iterable[str] | None = None,
                       ws_indices: Iterable[int] | None = None) -> str:
    """The earliest style layer an edit touches — the `start` for
    synthesis_prefix. Give the edited style layer names (S edits) or ws
    indices (W+ edits; a layer is touched when its affine reads that index)."""
    if (layers is None) == (ws_indices is None):
        raise ValueError("give exactly one of layers= or ws_indices=")
    names = set(layers) if layers is not None else None
    idx = set(ws_indices) if ws_indices is not None else None
    for sl in G.style_layers:
        if (names is not None and sl.name in names) or (idx is not None and sl.ws_index in idx):
            return sl.name
    raise ValueError("the edit touches no style layer of this generator")
