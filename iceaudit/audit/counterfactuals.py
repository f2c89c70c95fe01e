"""Counterfactuals: the smallest step in a subspace that flips a face's decision.

On the walk grid we find, on each side of alpha = 0, the first step whose
decision differs from the face's own; the crossing is then refined by
bisection *through the generator* between that step and the previous one
(``bisect_steps`` renders per face and side; each halves the bracket). The
reported step is the flipped end of the final bracket, so the decision at it
really differs. Of the two sides the one with the smaller |alpha| wins.
A flip-and-back between two grid steps is below grid resolution and missed.
"""
from __future__ import annotations

import numpy as np

from iceaudit.audit.stats import zero_index
from iceaudit.audit.walks import Walker


def smallest_flips(walker: Walker, alphas: np.ndarray, scores: np.ndarray, threshold: float,
                   bisect_steps: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per face: (alpha of the smallest flipping step or NaN, score there or NaN)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    n = scores.shape[0]
    i0 = zero_index(alphas)
    decided = scores > threshold
    own = decided[:, i0]
    faces, inner, outer, outer_score = [], [], [], []
    for side in (+1, -1):
        order = range(i0 + 1, len(alphas)) if side > 0 else range(i0 - 1, -1, -1)
        order = list(order)
        if not order:
            continue
        flipped = decided[:, order] != own[:, None]
        has = flipped.any(axis=1)
        first = np.argmax(flipped, axis=1)
        for f in np.flatnonzero(has):
            j = order[first[f]]
            faces.append(f)
            inner.append(alphas[j - side])
            outer.append(alphas[j])
            outer_score.append(scores[f, j])
    best_alpha = np.full(n, np.nan)
    best_score = np.full(n, np.nan)
    if not faces:
        return best_alpha, best_score
    faces = np.asarray(faces)
    inner, outer, outer_score = map(np.asarray, (inner, outer, outer_score))
    for _ in range(bisect_steps):
        mid = (inner + outer) / 2
        s = walker.at(faces, mid)
        moved = (s > threshold) != own[faces]
        outer = np.where(moved, mid, outer)
        outer_score = np.where(moved, s, outer_score)
        inner = np.where(moved, inner, mid)
    for f, a, s in zip(faces, outer, outer_score):
        if np.isnan(best_alpha[f]) or abs(a) < abs(best_alpha[f]):
            best_alpha[f], best_score[f] = a, s
    return best_alpha, best_score
