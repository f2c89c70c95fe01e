"""The step unit: walking one unit moves the subspace's measure by one SD across faces,
for gated measures (glasses) as well as linear ones."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from iceaudit.bank.build import bank_latents
from iceaudit.bank.calibrate import calibrate, measure_walk, solve_unit
from iceaudit.criteria.eyes import load_eyes
from iceaudit.criteria.spec import Measured
from iceaudit.resources import shipped_bank
from iceaudit.stylegan2.loaders import load_generator


def test_a_linear_change_keeps_the_first_unit_after_one_check():
    calls = []

    def half(u):
        calls.append(u)
        return 0.5 * u

    u, checks = solve_unit(half, first=4.0, target=2.0)
    assert u == 4.0 and checks == 1 and calls == [4.0]


def test_a_gated_change_is_solved_where_the_local_slope_is_far_off():
    # faces reach the attribute only past their own threshold: the change is 0 near each face
    thresholds = np.linspace(0.5, 3.0, 40)

    def half(u):
        return float(np.maximum(u - thresholds, 0).mean()) / 2

    target = 0.4
    u, checks = solve_unit(half, first=0.05, target=target)
    assert half(u) == pytest.approx(target, rel=0.03)
    assert 1 < checks <= 12
    assert u > 10 * 0.05


def test_an_unreachable_target_keeps_the_closest_length_seen():
    u, checks = solve_unit(lambda u: min(u, 1.0), first=0.5, target=5.0, max_checks=6)
    assert checks == 6 and u >= 1.0  # every length past 1 changes the measure as much; none less


@pytest.fixture(scope="module")
def demo():
    return load_generator("demo"), shipped_bank("demo")


def _shipped(demo, sid):
    """The shipped subspace ``sid`` and its own criterion's measure."""
    from iceaudit.bank.format import load_bank

    G, path = demo
    bank = load_bank(path)
    sub = bank[sid]
    return G, sub, Measured(json.loads(sub.criterion), load_eyes(None, None, defaults=bank.meta["eyes_spec"]))


def test_walking_one_unit_of_a_gated_attribute_moves_its_measure_one_sd(demo):
    G, sub, measured = _shipped(demo, "glasses")
    ws = bank_latents(G, 24, seed=7)
    out, cal = calibrate(G, replace(sub, unit_norm=1.0), measured, ws)
    v = measure_walk(G, out, measured, ws, [-1.0, 0.0, 1.0])
    per_side = float((v[:, 2] - v[:, 0]).mean()) / 2
    assert per_side == pytest.approx(float(v[:, 1].std()), rel=0.05)
    assert cal.sd_measure == pytest.approx(float(v[:, 1].std()))
    assert cal.slope == pytest.approx(cal.sd_measure / cal.unit_norm)
    # the local slope alone would have made the unit far longer: glasses are gated
    assert cal.sd_measure / cal.local_slope > 1.3 * cal.unit_norm
    assert cal.checks > 1 and "per unit walked" in out.unit


def test_a_near_linear_measure_keeps_its_local_unit(demo):
    G, sub, measured = _shipped(demo, "skin_tone")
    ws = bank_latents(G, 24, seed=7)
    _, cal = calibrate(G, replace(sub, unit_norm=1.0), measured, ws)
    assert cal.sd_measure / cal.local_slope == pytest.approx(cal.unit_norm, rel=0.15)
    assert math.isfinite(cal.unit_norm)
