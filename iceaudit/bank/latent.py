"""The latent vector a discovery method works in: W, W+ (a ws range) or S (style layers).

As in the bank format, a W+ vector is one w (``w_dim``) shared by the ws entries
``layers = [first, last]``; a W vector is shared by all of them.

`LatentSpace` turns faces (ws) into flat vectors x [N, D] and back into
images, and knows which style layer is the first one a coordinate changes, so
that perturbations of late layers re-run only the end of the synthesis network.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from iceaudit.bank.edit import ordered_layers, space_dim
from iceaudit.errors import UserError


@dataclass
class LatentSpace:
    G: object
    space: str  # "S", "W", "W+"
    layers: list = field(default_factory=list)  # S: style layer names ([] = all); W+: [first, last]

    def __post_init__(self) -> None:
        G = self.G
        if self.space == "S":
            names = [l.name for l in G.style_layers]
            space_dim(G, "S", self.layers)  # validates names, before ordering drops unknown ones
            self.layers = ordered_layers(G, self.layers) if self.layers else names
            by = {l.name: l.channels for l in G.style_layers}
            self._sizes = [by[n] for n in self.layers]
        elif self.space == "W+":
            if len(self.layers) != 2:
                raise UserError(f"W+ needs layers = [first, last] ws indices, got {self.layers}")
            first, last = int(self.layers[0]), int(self.layers[1])
            if not 0 <= first <= last < G.num_ws:
                raise UserError(f"W+ range {first}..{last} outside 0..{G.num_ws - 1}")
            self.layers = [first, last]
        elif self.space == "W":
            self.layers = []
        else:
            raise UserError(f"unknown latent space {self.space!r} (use S, W or W+)")

    @property
    def dim(self) -> int:
        if self.space == "S":
            return int(sum(self._sizes))
        return int(self.G.w_dim)

    def encode(self, ws: torch.Tensor) -> torch.Tensor:
        if self.space == "S":
            st = self.G.styles(ws)
            return torch.cat([st[n] for n in self.layers], dim=1)
        if self.space == "W+":
            return ws[:, self.layers[0]]
        return ws[:, 0]

    def styles(self, x: torch.Tensor, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Style dict of faces ``ws`` (batch 1 or N) with this space's part replaced by x [N, D]."""
        n = x.shape[0]
        if ws.shape[0] != n:
            ws = ws.expand(n, *ws.shape[1:])
        if self.space == "S":
            st = dict(self.G.styles(ws))
            for name, part in zip(self.layers, torch.split(x, self._sizes, dim=1)):
                st[name] = part
            return st
        ws = ws.clone()
        if self.space == "W+":
            a, b = self.layers
            ws[:, a : b + 1] = x[:, None, :]
        else:
            ws[:, :] = x[:, None, :]
        return self.G.styles(ws)

    def first_layer(self, coord: int) -> str:
        """The earliest style layer (synthesis order) that coordinate ``coord`` changes."""
        if self.space == "S":
            offset = 0
            for name, c in zip(self.layers, self._sizes):
                if coord < offset + c:
                    return name
                offset += c
            raise IndexError(coord)
        if self.space == "W":
            return self.G.style_layers[0].name
        ws_index = self.layers[0]
        for layer in self.G.style_layers:
            if layer.ws_index >= ws_index:
                return layer.name
        raise IndexError(coord)

    def coordinate_groups(self) -> list[tuple[str, list[int]]]:
        """Coordinates grouped by the first style layer they change, in synthesis order."""
        groups: dict[str, list[int]] = {}
        for i in range(self.dim):
            groups.setdefault(self.first_layer(i), []).append(i)
        order = [l.name for l in self.G.style_layers]
        return sorted(groups.items(), key=lambda kv: order.index(kv[0]))

    def render(self, x: torch.Tensor, ws: torch.Tensor, start: str | None = None, state=None) -> torch.Tensor:
        """Images of x [N, D]. With ``start`` only layers from ``start`` on are run; ``state``
        is an optional cached prefix of the single face ``ws`` [1, ...]."""
        st = self.styles(x, ws)
        if start is None:
            return self.G.synthesis_from_styles(st, noise_mode="const")
        if state is None:
            state = self.G.synthesis_prefix(st, start=start, noise_mode="const")
        elif x.shape[0] > 1:
            state = state.repeat_interleave(x.shape[0])
        return self.G.synthesis_suffix(state, st)

