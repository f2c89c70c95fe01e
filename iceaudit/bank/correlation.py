"""Correlation analysis of GAN latents (seed paper 002): intervene, measure, select.

Each latent dimension (a W coordinate, or an S channel) is shifted by
``shift`` of its SD across faces, others fixed; the change of a score (a
criterion measure or any classifier score, images -> [N]) is recorded per face.
The controlling set is either the top-ranked dimensions or built greedily: add
the dimension that most increases the *joint* success rate (share of faces
whose score moves by at least ``target`` when all chosen dimensions are shifted
together, each in the direction of its own effect).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from iceaudit.bank.latent import LatentSpace

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


Score = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Effects:
    space: LatentSpace
    sd: torch.Tensor  # [D] SD of each dimension across the faces
    per_face: torch.Tensor  # [N, D] score change when dim d moves +shift·sd
    shift: float

    @property
    def mean(self) -> torch.Tensor:
        return self.per_face.mean(0)

    def ranking(self) -> list[int]:
        return self.mean.abs().argsort(descending=True).tolist()


def _render(space: LatentSpace, x: torch.Tensor, ws: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([space.render(x[i : i + chunk], ws[i : i + chunk]) for i in range(0, len(x), chunk)])


def dimension_effects(G: Generator, score: Score, ws: torch.Tensor, space: LatentSpace, *, shift: float = 2.0,
                      dims: Sequence[int] | None = None, progress: Callable[[float], None] | None = None) -> Effects:
    with torch.no_grad():
        x0 = space.encode(ws)
        base = score(_render(space, x0, ws))
    sd = x0.std(0).clamp_min(1e-8) if len(x0) > 1 else x0.abs().mean(0).clamp_min(1e-8)
    dims = list(range(space.dim)) if dims is None else list(dims)
    per_face = torch.zeros(ws.shape[0], space.dim)
    for d in dims:
        x = x0.clone()
        x[:, d] += shift * sd[d]
        with torch.no_grad():
            per_face[:, d] = score(_render(space, x, ws)) - base
        if progress:
            progress(1)
    return Effects(space, sd, per_face, shift)


def joint_success_rate(G: Generator, score: Score, ws: torch.Tensor, eff: Effects, dims: Sequence[int], target: float) -> float:
    """Share of faces whose score rises by >= target when ``dims`` move together (signed by effect)."""
    if not dims:
        return 0.0
    with torch.no_grad():
        x0 = eff.space.encode(ws)
        x = x0.clone()
        for d in dims:
            x[:, d] += torch.sign(eff.mean[d]) * eff.shift * eff.sd[d]
        change = score(_render(eff.space, x, ws)) - score(_render(eff.space, x0, ws))
    return float((change >= target).float().mean())


@dataclass
class ControllingSet:
    dims: list[int]
    success: list[float] = field(default_factory=list)  # joint success rate after each addition


def controlling_by_ranking(eff: Effects, k: int | None = None, threshold: float | None = None) -> list[int]:
    order = eff.ranking()
    if threshold is not None:
        order = [d for d in order if abs(float(eff.mean[d])) >= threshold]
    return order[:k] if k is not None else order


def controlling_greedy(G: Generator, score: Score, ws: torch.Tensor, eff: Effects, *, target: float, max_size: int = 8,
                       candidates: int = 32, goal: float = 0.9) -> ControllingSet:
    pool = eff.ranking()[:candidates]
    chosen: list[int] = []
    history: list[float] = []
    while len(chosen) < max_size:
        best, best_rate = None, -1.0
        for d in pool:
            if d in chosen:
                continue
            rate = joint_success_rate(G, score, ws, eff, chosen + [d], target)
            if rate > best_rate:
                best, best_rate = d, rate
        if best is None or (history and best_rate <= history[-1]):
            break
        chosen.append(best)
        history.append(best_rate)
        if best_rate >= goal:
            break
    return ControllingSet(chosen, history)


def direction_of(eff: Effects, dims: Sequence[int]) -> torch.Tensor:
    """Unit latent direction [D] moving ``dims`` together, each by its effect (in SD units)."""
    v = torch.zeros(eff.space.dim)
    for d in dims:
        v[d] = float(eff.mean[d]) * float(eff.sd[d])
    return v / v.norm().clamp_min(1e-12)
