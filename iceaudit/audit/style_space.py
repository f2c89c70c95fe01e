"""Geometry of the packed style vector S, shared by latent attribution and AttFind.

S packs every style layer's styles (toRGB included) in ``G.style_layers``
order. Bank subspaces live in W, W+ or S; to compare them with S-space
quantities (IG attributions, single style channels) each subspace is mapped
into S:

- ``S``:  the basis rows are placed at the offsets of the layers they name.
- ``W`` / ``W+``: each style is an affine function of one ws entry
  (``styles = A_l w_{ws_index(l)} + b_l``), so a move ``v`` in W moves S by
  exactly ``A v`` on the layers whose ws entry moves (all layers for W, ws
  indices ``layers[0]..layers[1]`` for W+) and by zero elsewhere. We compute
  ``A v`` as ``pack(styles(ws0 + v)) - pack(styles(ws0))`` through the
  generator's own ``styles`` (exact, because it is affine), so nothing here
  depends on how the engine stores its affine layers.

The mapped rows are orthonormalised (QR); the span is what attribution is
projected onto. The mapped *walk direction* keeps its length: one semantic
unit along ``basis[0]`` moves S by ``direction_s``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from iceaudit.bank.format import Subspace
from iceaudit.errors import UserError

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


@dataclass
class StyleChannel:
    layer: str
    channel: int
    index: int  # position in the packed S vector

    @property
    def name(self) -> str:
        return f"{self.layer}:{self.channel}"


def layer_offsets(G: Generator) -> dict[str, tuple[int, int]]:
    """layer name -> (start, stop) in packed S."""
    out, off = {}, 0
    for layer in G.style_layers:
        out[layer.name] = (off, off + int(layer.channels))
        off += int(layer.channels)
    return out


def style_dim(G: Generator) -> int:
    return sum(int(layer.channels) for layer in G.style_layers)


def is_torgb(name: str) -> bool:
    return name.endswith("torgb")


def conv_channels(G: Generator) -> list[StyleChannel]:
    """Every conv style channel (toRGB excluded, as in StyleSpace and AttFind)."""
    offsets = layer_offsets(G)
    return [
        StyleChannel(layer.name, c, offsets[layer.name][0] + c)
        for layer in G.style_layers
        if not is_torgb(layer.name)
        for c in range(int(layer.channels))
    ]


def _w_moves(G, sub: Subspace) -> torch.Tensor:
    """[num_ws] mask of the ws entries a W / W+ edit moves."""
    mask = torch.zeros(G.num_ws)
    if sub.space == "W":
        mask[:] = 1
    else:
        first, last = int(sub.layers[0]), int(sub.layers[1])
        mask[first : last + 1] = 1
    return mask


def to_style_space(G: Generator, sub: Subspace, vectors: torch.Tensor) -> torch.Tensor:
    """Map latent moves ``vectors`` [k, D_space] of ``sub``'s space to S moves [k, D_S]."""
    device = next(iter(G.parameters())).device if hasattr(G, "parameters") else "cpu"
    vectors = vectors.to(device=device, dtype=torch.float32)
    if sub.space == "S":
        offsets = layer_offsets(G)
        names = [layer.name for layer in G.style_layers if layer.name in set(sub.layers)]
        missing = set(sub.layers) - set(names)
        if missing:
            raise UserError(f"subspace {sub.id!r}: style layers {sorted(missing)} are not in this generator")
        width = sum(offsets[n][1] - offsets[n][0] for n in names)
        if vectors.shape[1] != width:
            raise UserError(f"subspace {sub.id!r}: basis has {vectors.shape[1]} dims, its layers have {width}")
        out = torch.zeros(vectors.shape[0], style_dim(G), device=device)
        col = 0
        for n in names:
            a, b = offsets[n]
            out[:, a:b] = vectors[:, col : col + (b - a)]
            col += b - a
        return out
    if vectors.shape[1] != G.w_dim:
        raise UserError(f"subspace {sub.id!r}: basis has {vectors.shape[1]} dims, W has {G.w_dim}")
    mask = _w_moves(G, sub).to(device)
    ws0 = torch.zeros(1, G.num_ws, G.w_dim, device=device)
    ws = mask[None, :, None] * vectors[:, None, :]
    with torch.no_grad():
        s0 = G.pack_styles(G.styles(ws0))
        s1 = G.pack_styles(G.styles(ws))
    return s1 - s0


def subspace_in_s(G: Generator, sub: Subspace) -> tuple[torch.Tensor, torch.Tensor]:
    """(orthonormal basis of the subspace's image in S [k', D_S], one semantic unit's S move [D_S])."""
    mapped = to_style_space(G, sub, sub.basis)
    q, r = torch.linalg.qr(mapped.T)  # columns of q span the mapped rows
    keep = r.diagonal().abs() > 1e-6 * r.diagonal().abs().max().clamp_min(1e-12)
    basis_s = q[:, keep].T.contiguous()
    direction_s = to_style_space(G, sub, (sub.unit_norm * sub.direction)[None])[0]
    return basis_s, direction_s
