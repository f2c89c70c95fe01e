"""The statistics tell the truth on data whose answer is known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from iceaudit.audit.counterfactuals import smallest_flips
from iceaudit.audit.settings import AuditSettings
from iceaudit.audit.statistics import statistics
from iceaudit.audit.stats import (bootstrap_mean_ci, end_slope, face_slopes, holm, null_floor_tests,
                                  spearman_rows, walk_stats)
from iceaudit.bank.format import Subspace

ALPHAS = np.linspace(-2, 2, 9)


def test_face_slopes_and_monotonicity_exact():
    slopes = np.array([0.5, -1.0, 0.0])
    scores = 3.0 + slopes[:, None] * ALPHAS[None, :]
    assert np.allclose(face_slopes(ALPHAS, scores), slopes)
    rho = spearman_rows(ALPHAS, scores)
    assert np.allclose(rho, [1.0, -1.0, 0.0])  # a constant row counts as 0, not NaN
    st = walk_stats(ALPHAS, scores, threshold=3.5, seed=0)
    assert np.isclose(st.slope, slopes.mean()) and np.isclose(st.heterogeneity, slopes.std(ddof=1))
    # face 0 crosses 3.5 at alpha 1, face 1 at alpha -0.5, face 2 never
    assert st.flips.tolist() == [True, True, False] and np.isclose(st.flip_rate, 2 / 3)
    assert np.isclose(st.mean_abs_change, np.mean(np.abs(slopes[:, None] * np.delete(ALPHAS, 4))))


def test_bootstrap_ci_covers_true_slope():
    rng = np.random.default_rng(0)
    true, covered, reps = 0.3, 0, 60
    for r in range(reps):
        per_face = true + rng.normal(0, 0.5, 40)
        scores = rng.normal(0, 1, (40, 1)) + per_face[:, None] * ALPHAS + rng.normal(0, 0.05, (40, 9))
        st = walk_stats(ALPHAS, scores, threshold=0.0, seed=r, n_resamples=999)
        covered += st.ci_low <= true <= st.ci_high
        assert st.ci_low < st.slope < st.ci_high
    assert covered / reps >= 0.85  # nominal 95 %; 60 replicates
    assert bootstrap_mean_ci(np.full(10, 0.2), seed=0) == (0.2, 0.2)  # degenerate: no NaN


def test_null_test_separates_driver_from_null():
    rng = np.random.default_rng(1)
    nulls = {sid: list(rng.normal(0, 0.01, 8)) for sid in ("drv", "a", "b")}
    groups = {"drv": "g", "a": "g", "b": "h"}
    tests = null_floor_tests({"drv": 0.2, "a": 0.004, "b": -0.003}, nulls, groups)
    assert tests["drv"].p_value < 1e-6 and tests["drv"].df == 16  # drv and a share a group: 16 nulls
    assert tests["a"].p_value > 0.5 and tests["b"].p_value > 0.5
    assert abs(0.2) > tests["drv"].floor > 0.01  # floor ~ 2.1 sigma
    const = null_floor_tests({"c": 0.0}, {"c": [0.0] * 8}, {"c": 1})["c"]
    assert const.p_value == 1.0
    adj = holm([0.01, 0.02, 0.5])
    assert np.allclose(adj, [0.03, 0.04, 0.5])


def test_null_test_is_calibrated_under_the_null():
    rng = np.random.default_rng(2)
    p = [null_floor_tests({"s": rng.normal(0, 1)}, {"s": list(rng.normal(0, 1, 8))}, {"s": 0})["s"].p_value
         for _ in range(2000)]
    assert 0.035 < np.mean(np.asarray(p) < 0.05) < 0.065  # a level-0.05 test rejects ~5 % of nulls


def test_end_slope():
    scores = np.array([[0.0, 1.0, 4.0], [1.0, 1.0, 3.0]])
    assert np.isclose(end_slope(np.array([-1.0, 0.0, 1.0]), scores), (4 / 2 + 2 / 2) / 2)


class LinearWalker:
    """score(face, alpha) = alpha - crossing[face]; counts renders."""

    def __init__(self, crossing):
        self.crossing, self.renders = np.asarray(crossing, dtype=float), 0

    def at(self, face_idx, alphas):
        self.renders += len(face_idx)
        return np.asarray(alphas) - self.crossing[face_idx]


def test_counterfactual_bisection_finds_smallest_crossing():
    crossing = np.array([0.3, -1.1, 5.0, 1.6])  # face 2 never flips within [-2, 2]
    walker = LinearWalker(crossing)
    scores = ALPHAS[None, :] - crossing[:, None]
    step, after = smallest_flips(walker, ALPHAS, scores, threshold=0.0, bisect_steps=10)
    assert np.isnan(step[2]) and np.isnan(after[2])
    ok = ~np.isnan(step)
    grid = ALPHAS[1] - ALPHAS[0]
    assert np.all(np.abs(step[ok] - crossing[ok]) <= grid / 2**10 + 1e-12)
    # the returned step really is on the other side of the threshold
    assert np.all((after[ok] > 0) != (-crossing[ok] > 0))
    assert walker.renders == 3 * 10  # one bracket per flipping face, 10 renders each


def test_counterfactual_takes_the_nearer_side():
    # score = alpha^2 - 0.5 + 0.1 * alpha: crosses 0 at about +0.66 and -0.76
    walker = type("W", (), {"at": lambda self, f, a: np.asarray(a) ** 2 - 0.5 + 0.1 * np.asarray(a)})()
    scores = (ALPHAS**2 - 0.5 + 0.1 * ALPHAS)[None, :]
    step, _ = smallest_flips(walker, ALPHAS, scores, threshold=0.0, bisect_steps=12)
    assert 0.0 < step[0] < 0.7 and np.isclose(step[0], (-0.1 + np.sqrt(0.01 + 2)) / 2, atol=1e-3)


def _walks(face_changes: dict[str, np.ndarray], null_change: float, rng) -> tuple[pd.DataFrame, list, dict]:
    """Merged walks as the audit writes them: each subspace's faces change linearly by the given
    end-to-end amounts over alphas -1..1 from base scores around 0, and its random directions
    change each face by about ``null_change`` in size, either way."""
    alphas = np.linspace(-1.0, 1.0, 5)
    n = len(next(iter(face_changes.values())))
    base = np.linspace(-1.0, 1.0, n)
    rows, subspaces = [], []
    for sid, change in face_changes.items():
        subspaces.append(Subspace(id=sid, name=sid, description="", tags=[], space="W", layers=[],
                                  basis=torch.eye(1, 4), unit="u", unit_norm=1.0, step_range=(-1.0, 1.0),
                                  method="pca", criterion=""))
        for f in range(n):
            rows += [(sid, f, a, base[f] + change[f] * a / 2, 1.0) for a in alphas]
        for k in range(6):
            null = rng.choice([-1.0, 1.0], n) * null_change * rng.uniform(0.5, 1.5, n)
            for f in range(n):
                rows += [(f"null:{sid}:{k}", f, a, base[f] + null[f] * a / 2, 1.0) for a in (-1.0, 1.0)]
    results = pd.DataFrame(rows, columns=["subspace", "sample", "alpha", "score", "image_change"])
    return results, subspaces, {s.id: alphas for s in subspaces}


def test_a_driver_with_a_few_faces_the_other_way_is_an_effect_without_a_mixed_sign():
    """13 of 16 faces rise by 1, 3 fall by 3: the mean slope is small against its spread (its test
    misses it) and only 3/16 < 20 % move down, yet every face moves far more than random edits
    of the same image change do."""
    rng = np.random.default_rng(3)
    minority = np.r_[np.full(13, 1.0), np.full(3, -3.0)]
    mixed = np.r_[np.full(10, 1.0), np.full(6, -1.5)]
    noise = rng.normal(0, 0.05, 16)
    results, subspaces, grids = _walks({"minority": minority, "mixed": mixed, "noise": noise}, 0.05, rng)
    drivers, _ = statistics(results, subspaces, grids, threshold=0.0,
                            settings=AuditSettings.of(n=16, n_null=6, n_bootstrap=200, progress=False))
    d = {x.subspace: x for x in drivers}
    assert d["minority"].p_effect_adjusted > 0.05  # the mean-slope test alone misses it
    assert d["minority"].significant and d["minority"].effect and not d["minority"].mixed_sign
    assert d["minority"].extra.down_share < 0.2 and d["minority"].extra.p_size_adjusted < 0.01
    assert d["mixed"].significant and d["mixed"].mixed_sign
    assert not d["noise"].significant and not d["noise"].mixed_sign
