"""Calibrate a subspace's step unit: one unit = one SD of its target measure across faces.

The slope of the measure along the direction (per latent unit, central
difference at ±probe·SD of the faces' latent coordinate along it, averaged over
faces) turns "1 SD of the measure" into a latent length, ``unit_norm``. The
direction's sign is flipped when needed so that +1 unit *increases* the measure.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

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
    unit_norm = sd / slope if slope > 0 else float("inf")
    unit = f"1 SD ({sd:.4g}) of {measured.name} across {ws.shape[0]} sampled faces"
    out = replace(subspace, basis=basis, unit_norm=float(unit_norm), unit=unit)
    return out, Calibration(float(unit_norm), sd, slope, sd_lat, flipped, unit)


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
