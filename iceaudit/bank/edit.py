"""Apply a bank subspace edit to a batch of faces.

This is the one place that knows how a `Subspace` moves a generator's latents,
so that the audit, validation and contact sheets all walk the same way.

Walks are given in *semantic units* (``alphas``, shape ``[N]`` or a float):
the latent moves by ``alpha * unit_norm`` along the subspace's direction
(``basis[0]``). Optimisers (counterfactuals) may instead pass raw
coefficients over the whole basis (``coeffs``, shape ``[N, k]``, latent units).

Spaces:
- ``W``  : every ws entry moves by the same delta in W.
- ``W+`` : ws entries ``layers[0]..layers[1]`` (inclusive) move.
- ``S``  : the packed delta is split over the style layers named in ``layers``
           (in the generator's ``style_layers`` order) and added to their styles.

Partial synthesis: `start_layer(G, subspace)` is the first style layer the
edit touches; everything before it can be cached once per face with
``G.synthesis_prefix(styles, start=...)`` and the edited styles run with
``G.synthesis_suffix(state, edited_styles)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from iceaudit.bank.format import Subspace
from iceaudit.errors import UserError

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


def _layer_names(G) -> list[str]:
    return [layer.name for layer in G.style_layers]


def space_dim(G: Generator, space: str, layers: Sequence) -> int:
    """Dimension of the latent vector an edit in ``space``/``layers`` acts on."""
    if space in ("W", "W+"):
        return int(G.w_dim)
    by_name = {layer.name: layer for layer in G.style_layers}
    missing = [name for name in layers if name not in by_name]
    if missing:
        raise UserError(
            f"style layers {missing} do not exist in this generator "
            f"(it has: {', '.join(by_name)})"
        )
    return int(sum(by_name[name].channels for name in layers))


def ordered_layers(G: Generator, layers: Sequence[str]) -> list[str]:
    """``layers`` sorted into synthesis order (the packing order of S bases)."""
    wanted = set(layers)
    return [name for name in _layer_names(G) if name in wanted]


def check_compatible(G: Generator, subspace: Subspace) -> None:
    """Raise UserError when the subspace's basis does not fit this generator."""
    dim = space_dim(G, subspace.space, subspace.layers)
    if subspace.basis.shape[1] != dim:
        raise UserError(
            f"subspace {subspace.id!r}: basis has {subspace.basis.shape[1]} dims, but "
            f"space {subspace.space} {list(subspace.layers)} of this generator has {dim}"
        )
    if subspace.space == "W+":
        first, last = subspace.layers
        if not (0 <= first <= last < G.num_ws):
            raise UserError(f"subspace {subspace.id!r}: W+ range {first}..{last} outside 0..{G.num_ws - 1}")


def latent_delta(subspace: Subspace, alphas=None, coeffs: torch.Tensor | None = None, *, n: int | None = None) -> torch.Tensor:
    """The latent displacement [N, D] of an edit (semantic alphas or raw coeffs)."""
    basis = subspace.basis
    if coeffs is not None:
        coeffs = torch.as_tensor(coeffs, dtype=basis.dtype, device=basis.device)
        if coeffs.ndim != 2 or coeffs.shape[1] != basis.shape[0]:
            raise ValueError(f"coeffs must be [N, {basis.shape[0]}], got {tuple(coeffs.shape)}")
        return coeffs @ basis
    a = torch.as_tensor(alphas, dtype=basis.dtype, device=basis.device)
    if a.ndim == 0:
        a = a.expand(n if n is not None else 1)
    if a.ndim != 1:
        raise ValueError(f"alphas must be a float or [N], got {tuple(a.shape)}")
    return a[:, None] * (subspace.unit_norm * basis[0])[None, :]


def edit_ws(G: Generator, subspace: Subspace, ws: torch.Tensor, alphas=None, coeffs=None) -> torch.Tensor:
    """Edited ws [N, num_ws, w_dim] for a W or W+ subspace."""
    if subspace.space not in ("W", "W+"):
        raise ValueError(f"edit_ws needs a W/W+ subspace, {subspace.id!r} is in {subspace.space}")
    delta = latent_delta(subspace, alphas, coeffs, n=ws.shape[0]).to(ws)
    mask = torch.zeros(G.num_ws, dtype=ws.dtype, device=ws.device)
    if subspace.space == "W":
        mask[:] = 1
    else:
        mask[subspace.layers[0] : subspace.layers[1] + 1] = 1
    return ws + mask[None, :, None] * delta[:, None, :]


def edit_styles(G: Generator, subspace: Subspace, styles: dict[str, torch.Tensor], alphas=None, coeffs=None) -> dict[str, torch.Tensor]:
    """Edited styles for an S subspace (other layers are passed through untouched)."""
    if subspace.space != "S":
        raise ValueError(f"edit_styles needs an S subspace, {subspace.id!r} is in {subspace.space}")
    n = next(iter(styles.values())).shape[0]
    delta = latent_delta(subspace, alphas, coeffs, n=n)
    out = dict(styles)
    offset = 0
    for name in ordered_layers(G, subspace.layers):
        c = styles[name].shape[1]
        out[name] = styles[name] + delta[:, offset : offset + c].to(styles[name])
        offset += c
    return out


def apply_edit(G: Generator, subspace: Subspace, ws: torch.Tensor, alphas=None, coeffs=None) -> dict[str, torch.Tensor]:
    """Styles of the faces ``ws`` [N, num_ws, w_dim] walked by ``alphas`` units.

    Returns a style dict for ``G.synthesis_from_styles`` or ``G.synthesis_suffix``.
    """
    if subspace.space == "S":
        return edit_styles(G, subspace, G.styles(ws), alphas, coeffs)
    return G.styles(edit_ws(G, subspace, ws, alphas, coeffs))


def start_layer(G: Generator, subspace: Subspace) -> str:
    """First style layer (synthesis order) whose style the edit changes."""
    names = _layer_names(G)
    if subspace.space == "W":
        return names[0]
    if subspace.space == "W+":
        first = subspace.layers[0]
        for layer in G.style_layers:
            if layer.ws_index >= first:
                return layer.name
        raise UserError(f"subspace {subspace.id!r}: no style layer reads ws index {first}")
    wanted = set(subspace.layers)
    for name in names:
        if name in wanted:
            return name
    raise UserError(f"subspace {subspace.id!r}: none of its layers {list(subspace.layers)} is in this generator")


def walk_images(G: Generator, subspace: Subspace, ws: torch.Tensor, alphas: Sequence[float], noise_mode: str = "const") -> torch.Tensor:
    """Images [N, len(alphas), 3, R, R] of each face walked over ``alphas`` (partial synthesis)."""
    n, k = ws.shape[0], len(alphas)
    base = G.styles(ws)
    state = G.synthesis_prefix(base, start=start_layer(G, subspace), noise_mode=noise_mode)
    ws_rep = ws.repeat_interleave(k, dim=0)
    a = torch.tensor(list(alphas), dtype=ws.dtype, device=ws.device).repeat(n)
    styles = apply_edit(G, subspace, ws_rep, a)
    images = G.synthesis_suffix(state.repeat_interleave(k), styles)
    return images.reshape(n, k, *images.shape[1:])
