"""From the merged walks to per-subspace drivers, the null floor and the per-face table."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from iceaudit.audit.stats import (abs_effect_p_value, effect_p_value, end_slope, holm, null_floor_tests, sign_shares, walk_stats,
                                  zero_index)
from iceaudit.record import Driver, DriverEvidence, NullFloor, NullTest

if TYPE_CHECKING:  # annotations only
    from iceaudit.audit.sample import Faces


def _scores(results: pd.DataFrame, sid: str, n_alpha: int) -> np.ndarray:
    rows = results[results["subspace"] == sid].sort_values(["sample", "alpha"], kind="stable")
    return rows["score"].to_numpy().reshape(-1, n_alpha)


MIXED_SIGN_SHARE = 0.2  # a sign is mixed when at least this share of faces moves each way


def statistics(results, subspaces, grids, threshold, settings) -> tuple[list[Driver], NullFloor]:
    stats, tests_in, null_slopes, groups, change, p_size = {}, {}, {}, {}, {}, {}
    for i, sub in enumerate(subspaces):
        alphas = grids[sub.id]
        scores = _scores(results, sub.id, len(alphas))
        stats[sub.id] = walk_stats(alphas, scores, threshold, seed=settings.science.seed * 7919 + i,
                                   n_resamples=settings.science.n_bootstrap)
        # Slopes per unit of image change: every null changes the image as much as its
        # subspace, so nulls of one layer group share a distribution in these units and pool.
        change[sub.id] = float(results.loc[results["subspace"] == sub.id, "image_change"].iloc[0]) or 1.0
        tests_in[sub.id] = end_slope(alphas, scores) / change[sub.id]
        ends = alphas[[0, -1]]
        nulls = [_scores(results, f"null:{sub.id}:{k}", 2) for k in range(settings.science.n_null)]
        null_slopes[sub.id] = [end_slope(ends, n) / change[sub.id] for n in nulls]
        p_size[sub.id] = abs_effect_p_value(scores[:, -1] - scores[:, 0], [n[:, 1] - n[:, 0] for n in nulls])
        groups[sub.id] = (sub.space, json.dumps(list(sub.layers)), tuple(sub.step_range))
    tests = null_floor_tests(tests_in, null_slopes, groups, level=settings.science.level)
    level = settings.science.level
    p_adj = holm([tests[s.id].p_value for s in subspaces], level)
    p_effect = [effect_p_value(stats[s.id].face_slopes) for s in subspaces]
    p_effect_adj = holm(p_effect, level)
    p_size_adj = holm([p_size[s.id] for s in subspaces], level)
    first = subspaces[0].id
    base = _scores(results, first, len(grids[first]))[:, zero_index(grids[first])]
    margin = float(np.median(np.abs(base - threshold)))
    records = []
    for sub, pa, pe, pea, psa in zip(subspaces, p_adj, p_effect, p_effect_adj, p_size_adj):
        s, t, c = stats[sub.id], tests[sub.id], change[sub.id]
        width = float(sub.step_range[1] - sub.step_range[0])
        share = abs(s.slope) * width / margin if margin > 0 else float("inf")
        abs_share = s.mean_abs_slope * width / margin if margin > 0 else float("inf")
        up, down = sign_shares(s.face_slopes)
        flips_enough = s.flip_rate >= settings.science.min_flip_rate
        large = settings.science.min_margin_share
        mean_effect = bool(np.isfinite(pea) and pea < level and (flips_enough or share >= large))
        # Faces that move the other way pull the mean slope towards 0, whether they are a fifth
        # of the faces or fewer, so the effect is also called on its size: per-face |change|
        # beating random edits of the same image change on the same faces (Holm). Random edits,
        # not 0, are its null: any edit moves a network's score a little, this way or that.
        size_effect = bool(np.isfinite(psa) and psa < level and abs_share >= large)
        effect = mean_effect or size_effect
        two_ways = min(up, down) >= MIXED_SIGN_SHARE
        mixed = two_ways and effect  # flagged on effects only: the sign of a non-effect is noise
        beyond = bool(np.isfinite(pa) and pa < level)  # specificity: beyond random edits of its size
        records.append(Driver(
            subspace=sub.id, name=sub.name, tags=list(sub.tags), slope=s.slope, ci_low=s.ci_low, ci_high=s.ci_high,
            mean_abs_change=s.mean_abs_change, flip_rate=s.flip_rate, monotonicity=s.monotonicity,
            heterogeneity=s.heterogeneity, null_abs_slope=finite(t.floor * c), p_value=finite(t.p_value, 1.0),
            p_adjusted=finite(pa, 1.0), significant=effect, effect=effect, beyond_random=beyond, mixed_sign=mixed,
            p_effect=finite(pe, 1.0), p_effect_adjusted=finite(pea, 1.0),
            extra=DriverEvidence(
                margin_share=finite(share, 1e9), median_margin=margin, beats_null=beyond,
                end_slope=t.statistic * c, null_sigma=finite(t.sigma * c), null_df=t.df,
                null_slopes=[v * c for v in t.null_slopes], image_change=c, mean_abs_slope=s.mean_abs_slope,
                ci_excludes_zero=bool(s.ci_low > 0 or s.ci_high < 0), unit=sub.unit,
                step_range=list(sub.step_range), space=sub.space,
                # the walk follows the basis' principal (first) row only; a k-row subspace's
                # other k - 1 directions are not audited, and the report says so
                basis_rows=int(sub.basis.shape[0]), rows_audited=1,
                abs_margin_share=finite(abs_share, 1e9), up_share=up, down_share=down,
                p_size_adjusted=finite(psa, 1.0)),
        ))
    # Significant drivers first, then by size (score per semantic unit).
    # a mixed-sign driver ranks by its mean |per-face slope| (its mean slope hides it)
    records.sort(key=lambda d: (not d.significant, -(d.extra.mean_abs_slope if d.mixed_sign else abs(d.slope)),
                                d.subspace))
    for rank, d in enumerate(records, start=1):
        d.rank = rank
    all_null = np.concatenate([np.abs(null_slopes[s.id]) * change[s.id] for s in subspaces])
    null_info = NullFloor(
        test="two-sided t-test of each subspace's end-to-end slope (mean over faces of the score change "
                "between the ends of its step range, per unit) against random directions in the same space "
                "and layers, each rescaled so that walking the range changes the image as much as the "
                "subspace does; slopes per unit of image change, sigma from the nulls' mean square pooled "
                "per layer group; Holm over subspaces. This is beyond_random (specificity); significant is the "
                "effect claim: the mean per-face slope tested against 0 over faces (t-test, Holm) and "
                f"practically large (flip_rate >= {settings.science.min_flip_rate} or margin_share >= "
                f"{settings.science.min_margin_share}); or, whatever the signs, a per-face |score change| "
                "that beats that of the random edits on the same faces (paired one-sided t-test, Holm: "
                f"p_size_adjusted) with abs_margin_share >= {settings.science.min_margin_share}. mixed_sign: an "
                f"effect where at least {MIXED_SIGN_SHARE:.0%} of the faces moved each way",
        n_directions=settings.science.n_null * len(subspaces), n_per_subspace=settings.science.n_null,
        quantile=1 - settings.science.level / 2,
        abs_slope=finite(float(np.quantile(all_null, 1 - settings.science.level / 2))),
        per_subspace={sid: NullTest(floor=finite(t.floor * change[sid]), sigma=finite(t.sigma * change[sid]),
                                    df=t.df, null_slopes=[v * change[sid] for v in t.null_slopes],
                                    end_slope=t.statistic * change[sid], image_change=change[sid])
                      for sid, t in tests.items()},
    )
    return records, null_info


def finite(x, default=None):
    x = float(x)
    return x if np.isfinite(x) else default


def per_face_table(results, counterfactuals, subspaces, faces: Faces, threshold) -> pd.DataFrame:
    first = subspaces[0].id
    base = results[(results["subspace"] == first) & (results["alpha"] == 0.0)].sort_values("sample")
    score = base["score"].to_numpy()
    rows = []
    by_face = {k: g for k, g in counterfactuals.groupby("sample")}
    for i in range(len(faces)):
        g = by_face.get(i)
        if g is None or g.empty:
            rows.append((i, int(faces.seeds[i]), float(score[i]), bool(score[i] > threshold), [], None, None))
            continue
        g = g.assign(abs_step=g["step"].abs()).sort_values(["abs_step", "subspace"], kind="stable")
        rows.append((i, int(faces.seeds[i]), float(score[i]), bool(score[i] > threshold),
                     sorted(g["subspace"].tolist()), g["subspace"].iloc[0], float(g["step"].iloc[0])))
    return pd.DataFrame(rows, columns=["sample", "seed", "score", "positive", "flipped_by", "best_subspace", "best_step"])
