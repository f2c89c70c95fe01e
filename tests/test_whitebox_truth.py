"""White-box classifiers: each reads one known statistic of the image, and the audit must say so.

The statistics are checked in the renderer first (they read what they claim), then each
classifier is audited on the shipped demo generator and bank (N = 16) and graded against
the FaceLab oracle computed here: the top driver, the effect call, the mixed sign, the
constant, and the fairness gate on a pure skin-tone shortcut. docs/validation.md has the
same comparison over five face seeds (benchmarks/validate_audit.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from truth_helpers import audit_once, demo_world

from iceaudit.api import load_classifier
from iceaudit.bank.recipe import load_recipe
from iceaudit.errors import UserError
from iceaudit.facelab import factors as fl
from iceaudit.facelab.oracle import oracle_many
from iceaudit.facelab.render import render
from iceaudit.facelab.whitebox import CARD, whitebox

ROOT = Path(__file__).resolve().parent.parent
AUDITED = ("skin_luma", "background_luma", "skin_mid", "constant")


@pytest.mark.parametrize("name, factor", [("skin_luma", "skin_tone"), ("background_luma", "bg_brightness"),
                                          ("hair_luma", "hair_colour"), ("mouth_dark", "mouth_open")])
def test_each_statistic_rises_with_its_factor_in_the_renderer(name, factor):
    clf = whitebox(name)
    base = fl.sample_factors(64, 3)
    lo, hi = base.clone(), base.clone()
    k = fl.FACTOR_INDEX[factor]
    lo[:, k], hi[:, k] = fl.FACTORS[k].low, fl.FACTORS[k].high
    with torch.no_grad():
        assert bool((clf(render(hi).images) > clf(render(lo).images)).float().mean() > 0.9)


def test_standardised_on_renders_splits_faces_and_refuses_other_sizes():
    with torch.no_grad():
        s = whitebox("skin_luma")(render(fl.sample_factors(256, 4)).images)
    assert 0.3 < float((s > 0).float().mean()) < 0.7
    with pytest.raises(UserError, match="64, 64"):
        whitebox("skin_luma")(torch.zeros(1, 3, 32, 32))
    with pytest.raises(UserError, match="unknown white-box"):
        whitebox("nope")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return demo_world(tmp_path_factory.mktemp("wb"))


@pytest.fixture(scope="module")
def oracle():
    return oracle_many({n: whitebox(n) for n in AUDITED}, n=64, seed=1)


@pytest.fixture(scope="module")
def truth():
    return {s.id: s.truth_factor for s in load_recipe("facelab").subspaces if s.truth_factor}


_AUDITS: dict = {}


def audit(name, world):
    return audit_once(_AUDITS, name, lambda: load_classifier(whitebox(name), CARD), world)


@pytest.mark.parametrize("name", ["skin_luma", "background_luma"])
def test_a_single_statistic_is_the_top_driver_and_significant(name, world, oracle, truth):
    oracle_top = max(oracle[name], key=lambda r: r.mean_abs_delta)
    top = audit(name, world).drivers[0]
    assert truth.get(top.subspace) == oracle_top.factor, (top.subspace, oracle_top.factor)
    assert top.significant and top.effect and not top.mixed_sign
    assert (top.slope > 0) == (oracle_top.mean_delta > 0)


def test_a_score_that_peaks_mid_range_is_a_mixed_sign_driver(world, oracle, truth):
    assert max(oracle["skin_mid"], key=lambda r: r.mean_abs_delta).factor == "skin_tone"
    drivers = {d.subspace: d for d in audit("skin_mid", world).drivers}
    d = drivers["skin_tone"]
    assert d.significant and d.mixed_sign, d
    assert min(d.extra.up_share, d.extra.down_share) >= 0.2
    assert audit("skin_mid", world).drivers[0].subspace == "skin_tone"


def test_a_constant_classifier_has_no_effect(world):
    drivers = audit("constant", world).drivers
    assert not any(d.significant or d.effect for d in drivers)
    assert all(d.flip_rate == 0 and d.slope == 0 for d in drivers)


def test_the_fairness_gate_fails_a_pure_skin_tone_shortcut(world):
    from iceaudit.gate import run_gate

    policy = ROOT / "examples" / "policies" / "fairness.toml"
    assert not run_gate(audit("skin_luma", world).out, policy, None).passed
    assert not run_gate(audit("skin_mid", world).out, policy, None).passed  # the sign differs across faces
    assert run_gate(audit("constant", world).out, policy, None).passed

