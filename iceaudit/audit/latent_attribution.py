"""Latent attribution: IntegratedGradients of the decision score w.r.t. the style vector S.

For each face, IG runs along the straight path from the baseline (the mean
styles of the sampled faces) to the face's styles ``s``. With
``multiply_by_inputs=False`` Captum returns the path-averaged gradient ``g``;
the usual per-coordinate attribution is ``(s - b) * g``.

Projection onto a subspace. Each subspace is mapped into S and given an
orthonormal basis ``B`` there (`style_space.subspace_in_s`: S bases placed at
their layers' offsets, W/W+ bases mapped through the generator's affine maps).
We report two projections of each face's IG result:

- ``abs_attribution`` (used for the ranking): ``|| B a ||``, the length of the
  per-channel attribution vector ``a`` inside the subspace. It is bounded by
  ``||a||`` for every subspace, so subspaces of different dimension and space
  compare fairly; for a subspace made of single style channels it is the
  root-sum-square of those channels' attributions. ``attribution`` is the
  signed component along the walk direction, ``u0 . a``.
- ``covariant_attribution``: ``(B (s-b)) . (B g)``, IG in rotated coordinates
  (exact for a straight path under an orthogonal change of basis). It adds up
  over mutually orthogonal subspaces but double-counts across overlapping
  ones (a dense W direction overlaps every channel the faces vary along), so
  it is reported, not ranked.

Both measure what the sampled faces' variation does to the score. A subspace
the classifier is sensitive to but along which the faces barely vary scores
low here while a walk (which pushes every face by calibrated steps) scores it
high; ``slope_estimate`` (local gradient . one semantic unit's move in S) is
the first-order estimate of the walk slope.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from iceaudit.audit.style_space import subspace_in_s

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def style_score_fn(score_fn: ScoreFn, G: Generator, noise_mode: str = "const") -> ScoreFn:
    """The decision score as a function of packed styles ``[N, D_S] -> [N]``."""

    def forward(svec: torch.Tensor) -> torch.Tensor:
        images = G.synthesis_from_styles(G.unpack_styles(svec), noise_mode=noise_mode)
        return score_fn(images.clamp(-1, 1))

    return forward


def attribute_styles(
    score_fn: ScoreFn,
    G: Generator,
    ws: torch.Tensor,
    *,
    n_steps: int = 16,
    internal_batch_size: int | None = None,
    baseline: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """IG w.r.t. S for every face. Returns tensors: ``styles`` [N, D], ``baseline``
    [D], ``avg_grad`` [N, D] (path-averaged gradient), ``attribution`` [N, D]
    ((s - b) * avg_grad), ``local_grad`` [N, D], ``delta`` [N] (completeness gap:
    score(s) - score(b) - sum(attribution))."""
    from captum.attr import IntegratedGradients

    f = style_score_fn(score_fn, G)
    with torch.no_grad():
        svec = G.pack_styles(G.styles(ws)).detach()
    b = svec.mean(0) if baseline is None else baseline.to(svec)
    ig = IntegratedGradients(f, multiply_by_inputs=False)
    avg_grad = ig.attribute(
        svec, baselines=b[None].expand_as(svec).contiguous(), n_steps=n_steps, internal_batch_size=internal_batch_size
    ).detach()
    attribution = (svec - b) * avg_grad
    x = svec.clone().requires_grad_(True)
    scores = f(x)
    (local_grad,) = torch.autograd.grad(scores.sum(), x)
    with torch.no_grad():
        base_score = f(b[None])
    delta = scores.detach() - base_score - attribution.sum(1)
    return {
        "styles": svec,
        "baseline": b,
        "avg_grad": avg_grad,
        "attribution": attribution,
        "local_grad": local_grad.detach(),
        "scores": scores.detach(),
        "delta": delta,
    }


def project_on_subspaces(ig: dict[str, torch.Tensor], G: Generator, bank) -> dict[str, dict[str, float]]:
    """Per-subspace attribution (see module doc), averaged over faces."""
    d = ig["styles"] - ig["baseline"]
    g = ig["avg_grad"]
    out: dict[str, dict[str, float]] = {}
    a = ig["attribution"]
    for sub in bank.subspaces:
        basis_s, unit_s = subspace_in_s(G, sub)
        basis_s, unit_s = basis_s.to(d), unit_s.to(d)
        inside = (a @ basis_s.T).norm(dim=1)  # [N]
        along = a @ (unit_s / unit_s.norm().clamp_min(1e-12))
        covariant = ((d @ basis_s.T) * (g @ basis_s.T)).sum(1)
        slope = ig["local_grad"] @ unit_s  # d score / d unit, per face
        out[sub.id] = {
            "attribution": along.mean().item(),
            "abs_attribution": inside.mean().item(),
            "share": (inside.mean() / a.norm(dim=1).mean().clamp_min(1e-12)).item(),
            "covariant_attribution": covariant.abs().mean().item(),
            "slope_estimate": slope.mean().item(),
            "abs_slope_estimate": slope.abs().mean().item(),
            "dims_in_s": int(basis_s.shape[0]),
        }
    return out


def latent_attribution(score_fn: ScoreFn, G: Generator, ws: torch.Tensor, bank, *, n_steps: int = 16, internal_batch_size: int | None = None) -> dict:
    """IG in S projected on every bank subspace; ``ranking`` by mean |attribution|."""
    ig = attribute_styles(score_fn, G, ws, n_steps=n_steps, internal_batch_size=internal_batch_size)
    per_sub = project_on_subspaces(ig, G, bank)
    ranking = sorted(per_sub, key=lambda k: -per_sub[k]["abs_attribution"])
    gap = (ig["delta"].abs().mean() / (ig["scores"] - ig["scores"].mean()).abs().mean().clamp_min(1e-12)).item()
    return {
        "baseline": "mean styles of the sampled faces",
        "n_steps": n_steps,
        "n_faces": int(ws.shape[0]),
        "completeness_gap": gap,  # |score - score(baseline) - sum attr| relative to the score spread
        "subspaces": per_sub,
        "ranking": ranking,
        "ranking_by_slope_estimate": sorted(per_sub, key=lambda k: -per_sub[k]["abs_slope_estimate"]),
    }
