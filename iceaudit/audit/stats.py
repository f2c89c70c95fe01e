"""Statistics of the walks: how much each subspace moves the decision score.

Per face, the score along a walk is summarised by its least-squares slope
(score per semantic unit). Over faces:

- ``slope``: mean per-face slope (signed), with a bootstrap 95 % CI over faces
  (``scipy.stats.bootstrap``, BCa; percentile if BCa is degenerate).
- ``mean_abs_slope``: mean of |per-face slope| (counts effects whose sign
  differs between faces).
- ``mean_abs_change``: mean |score(alpha) - score(0)| over faces and steps.
- ``flip_rate``: share of faces whose decision at some step of the grid differs
  from their decision at alpha = 0.
- ``monotonicity``: mean per-face Spearman rho of score vs alpha.
- ``heterogeneity``: SD of per-face slopes.

Null floor test. Each subspace gets K random directions with its space,
layers and step range, each rescaled so that walking the range changes the image
as much as the subspace's walk (the runner; slopes below are then divided by
that image change), walked to the two ends of the step range.
The test statistic of a direction is its *end-to-end slope*
``mean_faces (score(hi) - score(lo)) / (hi - lo)`` (the same for the subspace,
from its own walk ends). The sampling unit of the null is the direction, not
the face (one direction's per-face slopes are correlated). For a random unit
direction d the slope is a linear functional of d to first order, so it is
close to normal with mean 0 (d and -d are equally likely) and an unknown
variance sigma^2 that depends on the layers edited. sigma^2 is estimated as the
mean square of the null slopes of the subspace's layer group (same space,
layers, step range; groups pool their nulls) and the subspace is
tested two-sided with ``t = slope / sigma_hat`` on ``K_group`` degrees of
freedom. ``null_abs_slope`` is the matching bound ``t_{0.975} * sigma_hat``:
|end-to-end slope| above it <=> p < 0.05. P-values are Holm-adjusted over
the bank's subspaces (statsmodels ``multipletests``). This is the *specificity* claim
(``beyond_random``): is the effect larger than that of random edits of the same visual size?

Effect test. Does moving the subspace change the decision at all? Over faces (the
sampling unit here is the face: the question is about the population of faces),
``effect_p_value`` tests the mean per-face slope against 0 (two-sided one-sample t-test),
Holm-adjusted over subspaces. An effect whose sign differs across faces is told by
`sign_shares`: the share of faces moved each way (counting only slopes above a tenth of the
median |slope|). The runner combines these with the practical size into ``effect`` / ``significant``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass
class WalkStats:
    slope: float
    ci_low: float
    ci_high: float
    mean_abs_slope: float
    mean_abs_change: float
    flip_rate: float
    monotonicity: float
    heterogeneity: float
    face_slopes: np.ndarray  # [N]
    flips: np.ndarray  # [N] bool: decision flips somewhere on the grid


def face_slopes(alphas: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Least-squares slope of score vs alpha, one per face. scores [N, A]."""
    a = np.asarray(alphas, dtype=np.float64)
    ac = a - a.mean()
    return (scores - scores.mean(axis=1, keepdims=True)) @ ac / (ac @ ac)


def spearman_rows(alphas: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of scores with alphas; 0 for constant rows."""
    ra = sps.rankdata(alphas)
    rs = sps.rankdata(scores, axis=1)
    ra = ra - ra.mean()
    rs = rs - rs.mean(axis=1, keepdims=True)
    denom = np.sqrt((rs**2).sum(axis=1) * (ra @ ra))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, rs @ ra / np.where(denom > 0, denom, 1), 0.0)
    return rho


def bootstrap_mean_ci(values: np.ndarray, seed: int, n_resamples: int = 2000,
                      level: float = 0.95) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or np.ptp(values) == 0:
        m = float(values.mean())
        return m, m
    rng = np.random.default_rng(seed)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=level,
                                method=method, vectorized=True, random_state=rng)
        lo, hi = res.confidence_interval
        if np.isfinite(lo) and np.isfinite(hi):
            return float(lo), float(hi)
    m = float(values.mean())
    return m, m


def zero_index(alphas: np.ndarray) -> int:
    idx = np.flatnonzero(np.asarray(alphas) == 0.0)
    if len(idx) != 1:
        raise ValueError("the alpha grid must contain 0 exactly once")
    return int(idx[0])


def walk_stats(alphas: np.ndarray, scores: np.ndarray, threshold: float, seed: int,
               n_resamples: int = 2000) -> WalkStats:
    alphas = np.asarray(alphas, dtype=np.float64)
    i0 = zero_index(alphas)
    slopes = face_slopes(alphas, scores)
    lo, hi = bootstrap_mean_ci(slopes, seed, n_resamples)
    decided = scores > threshold
    flips = (decided != decided[:, i0:i0 + 1]).any(axis=1)
    change = np.abs(scores - scores[:, i0:i0 + 1])
    change = np.delete(change, i0, axis=1)
    return WalkStats(
        slope=float(slopes.mean()), ci_low=lo, ci_high=hi,
        mean_abs_slope=float(np.abs(slopes).mean()),
        mean_abs_change=float(change.mean()) if change.size else 0.0,
        flip_rate=float(flips.mean()),
        monotonicity=float(spearman_rows(alphas, scores).mean()),
        heterogeneity=float(slopes.std(ddof=1)) if len(slopes) > 1 else 0.0,
        face_slopes=slopes, flips=flips,
    )


def end_slope(alphas: np.ndarray, scores: np.ndarray) -> float:
    """Mean over faces of (score at the last step - score at the first) / step span."""
    alphas = np.asarray(alphas, dtype=np.float64)
    return float(np.mean(scores[:, -1] - scores[:, 0]) / (alphas[-1] - alphas[0]))


@dataclass
class NullTest:
    statistic: float  # the subspace's end-to-end slope
    p_value: float  # two-sided, against random directions
    floor: float  # (1 - level/2) quantile of |slope| over random directions
    null_slopes: list[float]  # end-to-end slopes of this subspace's own null directions
    sigma: float  # estimated SD of a random direction's slope (its group)
    df: int


def null_floor_tests(stat: dict[str, float], null_slopes: dict[str, list[float]],
                     groups: dict[str, object], level: float = 0.05) -> dict[str, NullTest]:
    """t-tests of each subspace's end-to-end slope against random directions of
    its layer group (see module docstring); ``groups[id]`` keys subspaces whose
    null directions share a distribution (their nulls are pooled)."""
    pooled: dict[object, list[float]] = {}
    for sid in stat:
        pooled.setdefault(groups[sid], []).extend(null_slopes[sid])
    out = {}
    for sid, x in stat.items():
        y = np.asarray(pooled[groups[sid]], dtype=np.float64)
        df = len(y)
        sigma = float(np.sqrt(np.mean(y**2))) if df else float("nan")
        if df == 0:
            p, floor = float("nan"), float("nan")
        elif sigma == 0:
            p, floor = (0.0 if abs(x) > 0 else 1.0), 0.0
        else:
            p = float(2 * sps.t.sf(abs(x) / sigma, df))
            floor = float(sps.t.ppf(1 - level / 2, df) * sigma)
        out[sid] = NullTest(statistic=float(x), p_value=min(p, 1.0), floor=floor,
                            null_slopes=[float(v) for v in null_slopes[sid]], sigma=sigma, df=df)
    return out


def effect_p_value(slopes: np.ndarray) -> float:
    """Two-sided one-sample t-test of the mean per-face slope against 0 (1.0 when every
    slope is 0; 0.0 when they are all equal and non-zero)."""
    slopes = np.asarray(slopes, dtype=np.float64)
    if len(slopes) < 2 or not np.any(slopes):
        return 1.0
    if np.all(slopes == slopes[0]):
        return 0.0
    return float(sps.ttest_1samp(slopes, 0.0).pvalue)


def abs_effect_p_value(changes: np.ndarray, null_changes: np.ndarray) -> float:
    """One-sided paired t-test over faces that a walk moves each face's score more, in size,
    than random edits of the same image change move that face.

    Args:
        changes: (faces,) the score change between the ends of the walk, per face.
        null_changes: (directions, faces) the same for random directions rescaled to the
            walk's image change, on the same faces.

    A sign that differs across faces has a mean near zero, so its size |change| is what is
    tested; its null is not 0 (any edit moves a network somewhat) but the random edits.
    """
    size = np.abs(np.asarray(changes, dtype=np.float64))
    null = np.abs(np.asarray(null_changes, dtype=np.float64)).reshape(-1, len(size)).mean(axis=0)
    d = size - null
    if len(d) < 2 or not np.any(d):
        return 1.0
    if np.all(d == d[0]):
        return 0.0 if d[0] > 0 else 1.0
    return float(sps.ttest_1samp(d, 0.0, alternative="greater").pvalue)


def sign_shares(slopes: np.ndarray, floor: float = 0.1) -> tuple[float, float]:
    """(share of faces moved up, share moved down), counting only slopes whose size is at
    least ``floor`` of the median |slope| (numerically flat faces count for neither). Relative to
    the median, not the largest: a score that peaks mid-walk has steep faces on one side."""
    slopes = np.asarray(slopes, dtype=np.float64)
    scale = float(np.median(np.abs(slopes))) if len(slopes) else 0.0
    if scale == 0:
        return 0.0, 0.0
    big = np.abs(slopes) >= floor * scale
    return float(((slopes > 0) & big).mean()), float(((slopes < 0) & big).mean())


def holm(pvalues: list[float], alpha: float = 0.05) -> np.ndarray:
    """Holm-adjusted p-values (NaN p-values stay NaN and are never significant)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    adj = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        adj[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return adj
