"""Walk each subspace over a grid of semantic steps and score every image.

For one subspace and a batch of B faces with A steps, the layers before the
first edited style layer run once per face (``synthesis_prefix``), the cached
state is repeated A times (``state.repeat_interleave(A)``) and only the layers
from the edited one onward run for the B*A edited images
(``synthesis_suffix``). ``partial=False`` re-synthesises every image in full
(same numbers up to float rounding; the benchmark compares the two).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from iceaudit.audit.sample import Faces
from iceaudit.bank.edit import apply_edit, check_compatible, start_layer
from iceaudit.bank.format import Subspace

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def alpha_grid(step_range: tuple[float, float], n_steps: int) -> np.ndarray:
    """``n_steps`` evenly spaced steps over ``step_range``, with 0 added if missing."""
    lo, hi = float(step_range[0]), float(step_range[1])
    grid = np.linspace(lo, hi, n_steps) if hi > lo else np.array([lo])
    if not np.any(np.isclose(grid, 0.0, atol=1e-12)):
        grid = np.sort(np.append(grid, 0.0))
    grid[np.isclose(grid, 0.0, atol=1e-12)] = 0.0
    return grid


class Walker:
    """Renders and scores faces edited along one subspace's direction."""

    def __init__(self, G, faces: Faces, subspace: Subspace, score_fn: ScoreFn,
                 batch_images: int = 64, partial: bool = True) -> None:
        self.G, self.faces, self.subspace, self.score_fn = G, faces, subspace, score_fn
        self.batch_images = max(1, int(batch_images))
        self.partial = partial
        check_compatible(G, subspace)
        self.start = start_layer(G, subspace)
        self._cache = None  # (face indices, prefix state) of the last `at` batch

    def _render(self, ws: torch.Tensor, alphas: torch.Tensor, repeats: int, state=None) -> torch.Tensor:
        """ws [B, ...] faces; alphas [B*repeats] steps (face-major) -> images [B*repeats, 3, R, R]."""
        G = self.G
        edited = apply_edit(G, self.subspace, ws.repeat_interleave(repeats, dim=0), alphas)
        if not self.partial:
            return G.synthesis_from_styles(edited, noise_mode="const")
        if state is None:
            state = self._prefix(ws)
        return G.synthesis_suffix(state.repeat_interleave(repeats) if repeats > 1 else state, edited)

    def _prefix(self, ws: torch.Tensor):
        return self.G.synthesis_prefix(self.G.styles(ws), start=self.start, noise_mode="const")

    @torch.no_grad()
    def grid(self, alphas: np.ndarray, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Scores [N, A] of every face at every step of ``alphas``."""
        n, a = len(self.faces), len(alphas)
        per = max(1, self.batch_images // a)
        device = self.faces.ws.device
        alpha_t = torch.as_tensor(alphas, dtype=torch.float32, device=device)
        rows = []  # scores stay on the device until the grid is done: no host sync per batch
        for i in range(0, n, per):
            ws = self.faces.ws[i:i + per]
            if a <= self.batch_images:
                rows.append(self.score_fn(self._render(ws, alpha_t.repeat(len(ws)), a)).reshape(len(ws), a))
            else:  # fewer images per batch than steps: one face, its steps in batches
                rows.append(self._one_face(ws, alpha_t)[None])
            if on_batch:
                on_batch(len(ws))
        if not rows:
            return np.empty((0, a), dtype=np.float64)
        return torch.cat(rows).double().cpu().numpy()

    def _one_face(self, ws: torch.Tensor, alpha_t: torch.Tensor) -> torch.Tensor:
        state = self._prefix(ws) if self.partial else None
        b = self.batch_images
        return torch.cat([self.score_fn(self._render(ws, alpha_t[j:j + b], len(alpha_t[j:j + b]), state))
                          for j in range(0, len(alpha_t), b)])

    @torch.no_grad()
    def at(self, face_idx: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """Scores of face ``face_idx[j]`` at step ``alphas[j]`` (one image each)."""
        device = self.faces.ws.device
        out = np.empty(len(face_idx), dtype=np.float64)
        for i in range(0, len(face_idx), self.batch_images):
            idx = torch.as_tensor(face_idx[i:i + self.batch_images], dtype=torch.long, device=device)
            al = torch.as_tensor(alphas[i:i + self.batch_images], dtype=torch.float32, device=device)
            ws = self.faces.ws[idx]
            state = None
            if self.partial and len(face_idx) <= self.batch_images:
                # One batch of faces asked again and again (bisection): keep its prefix state.
                key = tuple(face_idx.tolist())
                if self._cache is None or self._cache[0] != key:
                    self._cache = (key, self._prefix(ws))
                state = self._cache[1]
            out[i:i + len(idx)] = self.score_fn(self._render(ws, al, 1, state)).double().cpu().numpy()
        return out

    @torch.no_grad()
    def images(self, face_idx: np.ndarray, alphas: np.ndarray) -> torch.Tensor:
        """Images [M, 3, R, R] of face ``face_idx[j]`` at step ``alphas[j]``."""
        device = self.faces.ws.device
        idx = torch.as_tensor(face_idx, dtype=torch.long, device=device)
        al = torch.as_tensor(alphas, dtype=torch.float32, device=device)
        b = self.batch_images
        if len(idx) <= b:
            return self._render(self.faces.ws[idx], al, 1)
        return torch.cat([self._render(self.faces.ws[idx[i:i + b]], al[i:i + b], 1) for i in range(0, len(idx), b)])


@torch.no_grad()
def end_to_end_change(walker: Walker, ends: np.ndarray, n_faces: int = 8) -> float:
    """Mean |image(hi) - image(lo)| over the first ``n_faces`` faces (images in [-1, 1])."""
    idx = np.arange(min(n_faces, len(walker.faces)))
    lo = walker.images(idx, np.full(len(idx), ends[0]))
    hi = walker.images(idx, np.full(len(idx), ends[-1]))
    return float((hi - lo).abs().mean())


def match_image_change(null: Subspace, walker_of: Callable[[Subspace], Walker], target: float,
                       ends: np.ndarray, rounds: int = 2) -> Subspace:
    """Rescale a null direction's unit so that walking its range changes the image as much
    as its subspace's walk does (``target``); image change grows non-linearly, so repeat."""
    from dataclasses import replace

    for _ in range(rounds):
        change = end_to_end_change(walker_of(null), ends)
        if not (change > 0 and target > 0):
            break
        null = replace(null, unit_norm=float(null.unit_norm) * target / change)
    return null


def null_directions(subspace: Subspace, k: int, seed: int) -> list[Subspace]:
    """``k`` random unit directions with the space, layers, unit norm and step
    range of ``subspace``: its null floor. Ids are ``null:<id>:<i>``."""
    from dataclasses import replace

    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for i in range(k):
        v = torch.randn(1, subspace.basis.shape[1], generator=gen, dtype=torch.float64)
        out.append(replace(
            subspace, id=f"null:{subspace.id}:{i}", name=f"random direction {i} for {subspace.name}",
            description="random direction with the same space, layers and unit norm", tags=["null"],
            basis=(v / v.norm()).to(torch.float32), method="null", eigenvalues=[], validation={},
        ))
    return out
