"""Calibrate a subspace's step unit: walking one unit moves its target measure by one SD across faces.

Two stages. The local slope of the measure along the direction (central difference at
±probe·SD of the faces' latent coordinate, averaged over faces) gives the sign (flipped
so that +1 unit *increases* the measure) and a first unit, ``SD / slope``. Then the unit
is solved so that the walk itself, from -1 to +1 unit, moves the measure by 2 SD on
average over the faces (`solve_unit`). For a measure linear in the latent the two agree
and the second stage takes one check. They part for a gated measure: glasses area is
zero until the walk reaches a face's threshold, so the local slope at most faces is
nearly nothing, and a unit taken from it walked 2 to 4 SD per unit, depending on how
many calibration faces happened to sit on the ramp.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import torch

from iceaudit.bank.edit import walk_images
from iceaudit.bank.format import Subspace
from iceaudit.bank.latent import LatentSpace
from iceaudit.criteria.spec import Measured

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


@dataclass
class Calibration:
    unit_norm: float  # latent length of one unit
    sd_measure: float  # SD of the measure across the faces
    slope: float  # measure change per latent unit along the (possibly flipped) direction
    sd_latent: float  # SD across faces of the latent coordinate along the direction
    flipped: bool
    unit: str
    local_slope: float = float("nan")  # the slope at the faces themselves (the first unit's)
    checks: int = 0  # walks measured to solve the unit

    def figures(self) -> dict:
        """The figures a bank stores in a subspace's ``validation.calibration``."""
        return {"sd_measure": self.sd_measure, "slope": self.slope, "local_slope": self.local_slope,
                "checks": self.checks, "sd_latent": self.sd_latent}


def latent_sd(G: Generator, subspace: Subspace, ws: torch.Tensor) -> float:
    with torch.no_grad():
        x = LatentSpace(G, subspace.space, list(subspace.layers)).encode(ws)
    proj = x @ subspace.direction.to(x)
    return float(proj.std()) if len(proj) > 1 else float(x.abs().mean())


def measure_walk(G: Generator, subspace: Subspace, measured: Measured, ws: torch.Tensor, alphas, chunk: int = 16) -> torch.Tensor:
    """Measure values [N, len(alphas)] along walks; the criterion's masks come from alpha = 0."""
    out = []
    for i in range(0, ws.shape[0], chunk):
        w = ws[i : i + chunk]
        with torch.no_grad():
            base = G.synthesis(w, noise_mode="const")
            ctx = measured.prepare(base)
            imgs = walk_images(G, subspace, w, alphas)  # [n, k, 3, R, R]
            n, k = imgs.shape[:2]
            rep = _repeat_ctx(ctx, k)
            vals = measured.value(imgs.flatten(0, 1), rep).reshape(n, k)
        out.append(vals)
    return torch.cat(out)


def _repeat_ctx(ctx, k: int):
    """Repeat a per-batch context (dataclass of tensors) so that it matches k walk frames per face."""
    if ctx is None or k == 1:
        return ctx
    fields = {}
    for name, value in vars(ctx).items():
        fields[name] = value.repeat_interleave(k, dim=0) if isinstance(value, torch.Tensor) and value.shape[0] > 1 else value
    return type(ctx)(**fields)


def calibrate(G: Generator, subspace: Subspace, measured: Measured, ws: torch.Tensor, *, probe: float = 0.5) -> tuple[Subspace, Calibration]:
    """Return the subspace with ``unit_norm``/``unit`` set (and row 0 oriented) plus the figures."""
    sd_lat = max(latent_sd(G, subspace, ws), 1e-6)
    delta = probe * sd_lat
    raw = replace(subspace, unit_norm=1.0)
    vals = measure_walk(G, raw, measured, ws, [-delta, 0.0, delta])
    slope = float(((vals[:, 2] - vals[:, 0]) / (2 * delta)).mean())
    sd = float(vals[:, 1].std())
    flipped = slope < 0
    basis = subspace.basis.clone()
    if flipped:
        basis[0] = -basis[0]
        slope = -slope
    local = slope
    unit_norm, checks = float("inf"), 0
    if slope > 0 and sd > 0:
        oriented = replace(raw, basis=basis)

        def half_change(u: float) -> float:  # mean measure change per side of a walk from -u to +u
            v = measure_walk(G, oriented, measured, ws, [-u, u])
            return float((v[:, 1] - v[:, 0]).mean()) / 2

        unit_norm, checks = solve_unit(half_change, sd / slope, sd)
        slope = sd / unit_norm
    unit = f"1 SD ({sd:.4g}) of {measured.name} per unit walked, across {ws.shape[0]} sampled faces"
    out = replace(subspace, basis=basis, unit_norm=float(unit_norm), unit=unit)
    return out, Calibration(float(unit_norm), sd, slope, sd_lat, flipped, unit, local, checks)


def solve_unit(half_change: Callable[[float], float], first: float, target: float, *,
               rtol: float = 0.03, max_checks: int = 12) -> tuple[float, int]:
    """The latent length ``u`` whose walk from ``-u`` to ``+u`` changes the measure by ``target``
    per side on average (``half_change(u) = target``), to ``rtol``.

    ``half_change`` grows with ``u`` for a measure that rises along the direction. Until the
    root is bracketed each step rescales ``u`` as if the change were linear (by at most 4x);
    then it bisects in log ``u``. After ``max_checks`` the closest ``u`` seen is kept.

    Args:
        half_change: ``u`` -> mean change of the measure from 0 to one side of the walk.
        first: the first guess (from the local slope).
        target: the change wanted (one SD of the measure).

    Returns:
        The length, and how many times ``half_change`` was called.
    """
    lo = hi = None
    u, best, best_err = first, first, float("inf")
    for check in range(1, max_checks + 1):
        got = half_change(u)
        err = abs(math.log(got / target)) if got > 0 else float("inf")
        if err < best_err:
            best, best_err = u, err
        if err <= math.log1p(rtol):
            return u, check
        if got < target:
            lo = u
        else:
            hi = u
        if lo is not None and hi is not None:
            u = math.sqrt(lo * hi)
        elif got > 0:
            u = u * min(4.0, max(0.25, target / got))
        else:
            u = u * 4.0
    return best, max_checks


def orient(G: Generator, subspace: Subspace, measured: Measured, ws: torch.Tensor, chunk: int = 8) -> Subspace:
    """Rotate a multi-row basis so that row 0 is the direction inside the subspace that moves
    the measure most (the measure's mean latent gradient projected onto the span)."""
    B = subspace.basis
    if B.shape[0] < 2:
        return subspace
    space = LatentSpace(G, subspace.space, list(subspace.layers))
    coef = torch.zeros(B.shape[0], dtype=torch.float64)
    for i in range(0, ws.shape[0], chunk):
        w = ws[i : i + chunk].detach()
        with torch.no_grad():
            x0 = space.encode(w)
        x = x0.clone().requires_grad_(True)
        images = space.render(x, w)
        ctx = measured.prepare(images.detach())
        (g,) = torch.autograd.grad(measured.value(images, ctx).sum(), x)
        coef += (g.detach() @ B.T.to(g)).sum(0).double()
    if coef.norm() == 0:
        return subspace
    c = (coef / coef.norm()).float()
    # orthonormal basis of the coefficient space with c first
    q, r = torch.linalg.qr(torch.cat([c[:, None], torch.eye(len(c))], dim=1))
    q = q[:, : len(c)] * torch.sign(r.diagonal()[: len(c)])[None, :]
    return replace(subspace, basis=(q.T @ B).contiguous())
