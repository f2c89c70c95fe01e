"""Directions from how the generator's own faces vary: the latent regressed on a criterion.

Over a pool of sampled faces, the latent vector x (in the subspace's space) is regressed
jointly on the standardised criterion and the standardised measures to hold:
``x ≈ x̄ + Σ_j y_j γ_j``. The criterion's coefficient γ_c is the mean change of the latent
per SD of the criterion *among faces whose held measures are equal* (a conditional edit,
as in Denton et al. 2019 and InterFaceGAN's conditional manipulation, but with the held
measures' own directions removed obliquely, along how faces vary, not orthogonally).

Why it is in the bank beside ICE: ICE finds the direction in which the criterion is most
*sensitive* per unit of latent norm, which can be a direction sampled faces never take (one
criterion SD costing tens of latent SDs), so its walks leave the faces after a fraction of a
unit. γ_c is a direction in which faces do differ, so one unit stays within the spread of the
sampled latents for geometry that the generator draws with many coupled channels.
Only a regression of x on a few measures is solved ([N, k] design), so a 2,176-dim style
space costs no more than W.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import torch

from iceaudit.bank.latent import LatentSpace
from iceaudit.errors import UserError

if TYPE_CHECKING:  # annotations only
    from iceaudit.criteria.spec import Measured
    from iceaudit.stylegan2.networks import Generator


@dataclass(frozen=True)
class RegressionDirection:
    """A criterion's conditional direction and the figures a reviewer checks it by."""

    direction: torch.Tensor  # [D], unit length, oriented so that the criterion grows along it
    faces: int  # sampled faces the regression is fitted on
    held: tuple[str, ...]  # measures held equal
    held_r2: float  # share of the criterion's variance the held measures explain (collinearity)
    latent_sd_per_sd: float  # latent length per criterion SD along the direction, in latent SDs along it

    def to_json(self) -> dict:
        return {"faces": self.faces, "held": list(self.held), "held_r2": round(self.held_r2, 4),
                "latent_sd_per_sd": round(self.latent_sd_per_sd, 4)}


def regression_direction(G: "Generator", space: LatentSpace, criterion: "Measured", held: Mapping[str, "Measured"],
                         ws: torch.Tensor, *, chunk: int = 64, max_held_r2: float = 0.95,
                         progress: Callable[[float], None] | None = None) -> RegressionDirection:
    """The criterion's coefficient in the joint regression of the latent on it and the held measures.

    Args:
        G: the generator.
        space: the latent space the direction lives in (W, W+ or S layers).
        criterion: the measure the direction should move.
        held: measures to hold equal, by name.
        ws: the pool of sampled faces, [N, num_ws, w_dim]; N well above the number of measures.
        chunk: faces rendered per pass (memory only).
        max_held_r2: refuse when the held measures explain more of the criterion than this (the
            conditional direction is then ill-posed: nothing of the criterion is left to move).
        progress: optional ``progress(faces)`` per rendered chunk.
    """
    n = ws.shape[0]
    if n < 4 * (len(held) + 2):
        raise UserError(f"a regression direction needs many more faces than measures ({n} faces, {len(held) + 1} measures)")
    names = ["criterion", *held]
    measures = [criterion, *held.values()]
    xs, ys = [], [[] for _ in measures]
    with torch.no_grad():
        for i in range(0, n, chunk):
            w = ws[i:i + chunk]
            xs.append(space.encode(w).double())
            images = G.synthesis(w, noise_mode="const")
            for j, m in enumerate(measures):
                ys[j].append(m(images).double())
            if progress is not None:
                progress(w.shape[0])
    x = torch.cat(xs)
    values = [torch.cat(v) for v in ys]
    for v, name in zip(values, names):
        if not float(v.std()) > 0:
            raise UserError(f"measure {name!r} does not vary across the sampled faces: nothing to regress on")
    direction, held_r2 = conditional_direction(x, values[0], torch.stack(values[1:], 1) if held else None)
    if held_r2 > max_held_r2:
        raise UserError(f"the held measures ({', '.join(held)}) explain {held_r2:.0%} of the criterion across "
                        "sampled faces: holding them leaves nothing of it to move", hint="Hold fewer measures.")
    norm = float(direction.norm())
    if not norm > 0:
        raise UserError("the criterion does not vary with the latent across the sampled faces")
    unit = direction / norm
    sd_along = float(((x - x.mean(0)) @ unit).std())
    return RegressionDirection(direction=unit.float(), faces=n, held=tuple(held), held_r2=held_r2,
                               latent_sd_per_sd=norm / sd_along if sd_along > 0 else float("inf"))


def conditional_direction(x: torch.Tensor, y: torch.Tensor, held: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """The latent's mean change per SD of ``y`` among samples whose ``held`` measures are equal.

    Args:
        x: latents [N, D].
        y: the criterion [N].
        held: measures to hold [N, k], or None.

    Returns:
        The coefficient of standardised ``y`` in the least-squares fit of centred ``x`` on the
        standardised ``y`` and ``held`` ([D], not normalised), and the share of ``y``'s variance
        that ``held`` explains (0 without it).
    """
    n = x.shape[0]
    cols = [y[:, None]] + ([held] if held is not None else [])
    Y = torch.cat(cols, 1).double()
    assert Y.shape[0] == n and y.ndim == 1, (Y.shape, x.shape)
    Y = (Y - Y.mean(0)) / Y.std(0)
    gamma = torch.linalg.lstsq(Y, (x - x.mean(0)).double()).solution  # [k, D]
    held_r2 = 0.0
    if held is not None:
        fit = torch.linalg.lstsq(Y[:, 1:], Y[:, :1]).solution
        held_r2 = float(1 - ((Y[:, :1] - Y[:, 1:] @ fit) ** 2).mean() / (Y[:, 0] ** 2).mean())
    return gamma[0], held_r2
