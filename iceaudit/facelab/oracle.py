"""The FaceLab oracle: what a classifier truly depends on, by intervention.

For each true factor, move that factor alone by a fixed step in the renderer
(every other factor held fixed, same face) and record the change of the
classifier's decision score:

    delta_i = score(render(f_i with factor k at v + step)) - score(render(f_i at v))

over `n` faces f_i from the FaceLab prior (seeded). Where v + step would leave
the range the pair is (v - step, v), so every delta is "higher value minus
lower value". Reported per factor: the signed mean of delta and the mean of
|delta|, each with a percentile bootstrap 95 % CI over faces
(scipy.stats.bootstrap), and the signed mean in units of the score's SD over
the same faces (comparable across classifiers). The step is a fixed share of
each factor's range (`step=0.25` = a quarter of the range).

This is the ground truth audits are graded against; the audit itself must
never call it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.stats import bootstrap

from iceaudit.errors import UserError
from iceaudit.facelab import factors as fl
from iceaudit.facelab.render import render

Score = Callable[[torch.Tensor], torch.Tensor]  # images [N,3,64,64] in [-1,1] -> scores [N]


@dataclass
class OracleRow:
    factor: str
    step: float  # in the factor's own units
    mean_delta: float
    ci_low: float
    ci_high: float
    mean_abs_delta: float
    abs_ci_low: float
    abs_ci_high: float
    effect_sd: float  # mean_delta / SD(score over the base faces)
    n: int

    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def _pairs(base: torch.Tensor, k: int, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) factor tensors for factor k: the face itself and its one-step move."""
    f = fl.FACTORS[k]
    v = base[:, k]
    up = v + step <= f.high + 1e-6
    low, high = base.clone(), base.clone()
    low[:, k] = torch.where(up, v, v - step)
    high[:, k] = torch.where(up, v + step, v)
    return low, high


def _ci(values: np.ndarray, seed: int) -> tuple[float, float]:
    if np.allclose(values, values[0]):
        return float(values[0]), float(values[0])
    res = bootstrap((values,), np.mean, n_resamples=2000, confidence_level=0.95, method="percentile",
                    rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@torch.no_grad()
def oracle_many(classifiers: dict[str, Score], factors: Sequence[str] | None = None, n: int = 256,
                step: float = 0.25, seed: int = 0, batch: int = 128,
                progress: Callable[[str], None] | None = None) -> dict[str, list[OracleRow]]:
    """Oracle tables for several classifiers at once (each face pair is rendered once)."""
    names = fl.check_names(list(factors) if factors is not None else list(fl.FACTOR_NAMES))
    seed = fl.check_seed(seed)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise UserError(f"n must be an integer >= 2, got {n!r}")
    if not 0 < step <= 0.5:  # past half the range, a face in the middle can move neither way
        raise UserError(f"step is a share of each factor's range and must be in (0, 0.5], got {step!r}: a larger "
                        "step leaves the range both ways for faces in the middle of it")
    base = fl.sample_factors(n, seed)

    def scores(fv: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {c: [] for c in classifiers}
        for i in range(0, len(fv), batch):
            imgs = render(fv[i:i + batch], 64).images
            for c, fn in classifiers.items():
                out[c].append(torch.as_tensor(fn(imgs)).float().reshape(-1))
        return {c: torch.cat(v) for c, v in out.items()}

    base_scores = scores(base)
    sd = {c: float(s.std()) for c, s in base_scores.items()}
    tables: dict[str, list[OracleRow]] = {c: [] for c in classifiers}
    for name in names:
        k = fl.FACTOR_INDEX[name]
        f = fl.FACTORS[k]
        st = step * f.span
        low, high = _pairs(base, k, st)
        up = torch.isclose(low[:, k], base[:, k])
        moved = torch.where(up.unsqueeze(1), high, low)
        moved_scores = scores(moved)
        for c in classifiers:
            s0, s1 = base_scores[c], moved_scores[c]
            delta = torch.where(up, s1 - s0, s0 - s1).numpy().astype(np.float64)
            lo, hi = _ci(delta, seed)
            alo, ahi = _ci(np.abs(delta), seed)
            tables[c].append(OracleRow(name, round(st, 6), float(delta.mean()), lo, hi, float(np.abs(delta).mean()),
                                       alo, ahi, float(delta.mean()) / sd[c] if sd[c] > 0 else 0.0, n))
        if progress:
            progress(name)
    return tables


def oracle(classifier: Score, factors: Sequence[str] | None = None, n: int = 256, step: float = 0.25,
           seed: int = 0) -> list[OracleRow]:
    """Per-factor effect of single-factor interventions on `classifier`'s decision score.

    classifier: callable taking images [N,3,64,64] in [-1,1] and returning decision scores [N].
    factors: names to test (default: all 19). step: share of each factor's range.
    """
    return oracle_many({"c": classifier}, factors, n, step, seed)["c"]


def markdown(rows: list[OracleRow]) -> str:
    """The oracle table, strongest |effect| first."""
    out = ["| factor | step | mean Δscore [95% CI] | mean \\|Δscore\\| [95% CI] | Δ / SD(score) |",
           "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -abs(r.mean_abs_delta)):
        mark = " *" if r.significant() else ""
        out.append(f"| `{r.factor}` | {r.step:g} | {r.mean_delta:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}]{mark} | "
                   f"{r.mean_abs_delta:.3g} [{r.abs_ci_low:.3g}, {r.abs_ci_high:.3g}] | {r.effect_sd:+.2f} |")
    return "\n".join(out)


def as_records(rows: list[OracleRow]) -> list[dict]:
    return [asdict(r) for r in rows]
