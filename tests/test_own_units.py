"""Each walk's own criterion measured at the audited faces (units that mean something here)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from iceaudit.api import load_classifier
from iceaudit.audit.own_units import AT_BUILD, AT_FACES, own_effect
from iceaudit.audit.runner import AuditSettings, run_audit
from iceaudit.bank.format import Bank, load_bank
from iceaudit.criteria.eyes import load_eyes
from iceaudit.resources import shipped_bank
from iceaudit.stylegan2.loaders import load_generator


@pytest.fixture(scope="module")
def demo():
    G, bank = load_generator("demo"), load_bank(shipped_bank("demo"))
    return G, Bank(bank.name, bank.generator_fingerprint, [bank["skin_tone"], bank["smile"]], bank.meta)


def _audit(G, bank, tmp_path, n=8, **options):
    clf = load_classifier(lambda x: x.mean((1, 2, 3)) * 10, {"input_size": 64, "head": "logit"})
    return run_audit(clf, G, bank, AuditSettings.of(n=n, seed=0, n_null=2, n_steps=3, device="cpu", progress=False,
                                                    out=str(tmp_path), **options)).record


@pytest.fixture(scope="module")
def audited(demo, tmp_path_factory):
    G, bank = demo
    out = tmp_path_factory.mktemp("own") / "audit"
    return _audit(G, bank, out), out


def test_the_audit_measures_each_walks_own_criterion_at_its_faces(demo, audited):
    _, bank = demo
    record = audited[0]
    own = record.validity.own_criterion
    for sid in ("skin_tone", "smile"):
        o = own[sid]
        assert o.measured_at == AT_FACES and o.faces == 8
        assert o.bank_effect_per_unit == pytest.approx(bank[sid].validation["own_effect"])
        assert 0.3 < o.effect_per_unit < 3.0, o  # calibrated on other faces: near 1, not equal
        assert o.effect_per_unit != o.bank_effect_per_unit
        d = next(d for d in record.drivers if d.subspace == sid)
        assert d.extra.own_effect == o.effect_per_unit
        assert d.extra.slope_per_own_sd == pytest.approx(d.slope / o.effect_per_unit)


def test_a_longer_unit_moves_the_criterion_proportionally_more(demo):
    G, bank = demo
    eyes = load_eyes(None, None, defaults=bank.meta["eyes_spec"])
    sub = replace(bank["skin_tone"], step_range=(-0.5, 0.5))
    ws = G.mapping(torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(3)), None)
    one = own_effect(G, sub, ws, eyes)
    half = own_effect(G, replace(sub, unit_norm=sub.unit_norm / 2), ws, eyes)
    assert one > 0 and half == pytest.approx(one / 2, rel=0.15)


def test_without_the_banks_eyes_the_build_figure_is_kept_and_labelled(demo, tmp_path):
    G, bank = demo
    smile = [bank["smile"]]
    blind = Bank(bank.name, bank.generator_fingerprint, smile,
                 {**bank.meta, "eyes_spec": {"landmarks": str(tmp_path / "missing-fan.pth"), "parser": "facelab"}})
    own = _audit(G, blind, tmp_path / "b", n=4).validity.own_criterion
    assert own["smile"].measured_at == AT_BUILD
    assert own["smile"].effect_per_unit == pytest.approx(bank["smile"].validation["own_effect"])
    off = _audit(G, Bank(bank.name, bank.generator_fingerprint, smile, bank.meta), tmp_path / "c", n=4,
                 own_units=False).validity.own_criterion
    assert off["smile"].measured_at is None  # the bank's figures, as before this measurement existed


def test_the_report_shows_where_each_unit_was_measured(demo, audited):
    from iceaudit.report.model import load_report_model
    from iceaudit.report.render import render_html

    _, bank = demo
    html = render_html(load_report_model(audited[1]))
    table = html[html.index('id="own-table"'):]
    table = table[:table.index("</table>")]
    assert "slope per own SD" in table and "at bank build" in table
    assert "measured on this audit's own faces" in html
    assert f"{bank['smile'].validation['own_effect']:.3g}"[:4] in table  # the bank's figure beside the audit's
