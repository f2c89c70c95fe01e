"""Where walks stay faces: the novelty bound, valid ranges in the bank, and audits that walk no further."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch
from cli_helpers import run_cli

from iceaudit.audit.runner import AuditSettings, run_audit
from iceaudit.api import load_classifier
from iceaudit.bank.format import Bank, load_bank, save_bank
from iceaudit.bank.manifold import FaceNovelty, ManifoldSettings, _own_response, fit_novelty, settings_from, walk_validity
from iceaudit.errors import UserError
from iceaudit.resources import shipped_bank
from iceaudit.stylegan2.loaders import load_generator

SMALL = ManifoldSettings(fit_faces=256, held_out_faces=128, walk_faces=8, steps_per_side=4)


def test_novelty_is_calibrated_on_held_out_faces_and_ranks_outliers_higher():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(6, 3 * 4 * 4, generator=g)
    fit = torch.randn(400, 6, generator=g) @ basis + 0.01 * torch.randn(400, 48, generator=g)
    held = torch.randn(400, 6, generator=g) @ basis + 0.01 * torch.randn(400, 48, generator=g)
    model = FaceNovelty.fit(fit, size=4, rank=6).with_threshold(held, 0.9)
    assert abs(float(model.off(held).double().mean()) - 0.1) < 0.01  # the quantile it was set at
    inside = torch.randn(50, 6, generator=g) @ basis + 0.01 * torch.randn(50, 48, generator=g)
    outside = inside + 0.5 * torch.randn(50, 48, generator=g)  # off the 6-dim plane the samples lie on
    assert float(model.off(inside).double().mean()) < 0.3
    assert bool(model.off(outside).all())


@pytest.fixture(scope="module")
def demo():
    torch.set_num_threads(2)
    return load_generator("demo"), load_bank(shipped_bank("demo"))


def test_a_walk_that_leaves_the_faces_is_clipped_and_a_gentle_one_is_not(demo):
    G, bank = demo
    novelty, ws = fit_novelty(G, SMALL)
    base = bank["skin_tone"]
    gentle = replace(base, unit_norm=base.unit_norm * 0.05, valid_range=None)
    wild = replace(base, unit_norm=base.unit_norm * 20, valid_range=None)
    assert walk_validity(G, gentle, ws, novelty, SMALL).valid_range == (-2.0, 2.0)
    v = walk_validity(G, wild, ws, novelty, SMALL)
    assert v.valid_range == (-0.5, 0.5) and v.leaves_at_first_step  # kept to one step each way, and said
    assert max(v.off_share) > SMALL.max_off_share


def test_own_response_is_the_measure_change_per_unit_over_each_step_toward_zero():
    grid = [-1.0, -0.5, 0.0, 0.5, 1.0]
    per_face = torch.tensor([[-0.5, -0.5, 0.0, 0.5, 0.5], [-0.3, -0.3, 0.0, 0.7, 0.7]])  # moves, then stops
    sub = replace(load_bank(shipped_bank("demo"))["skin_tone"], validation={"calibration": {"sd_measure": 0.5}})
    r = _own_response(grid, per_face.double(), sub)
    assert r[0.5] == pytest.approx(2.4) and r[1.0] == 0.0  # (0.5 + 0.7) / 2 / 0.5 per unit, in calibrated SDs
    assert r[-0.5] == pytest.approx(1.6) and r[-1.0] == 0.0


def test_a_walk_that_stays_faces_but_stops_moving_its_measure_is_clipped_by_the_response(demo):
    from iceaudit.criteria.eyes import load_eyes
    from iceaudit.criteria.spec import Measured

    G, bank = demo
    novelty, ws = fit_novelty(G, SMALL)
    base = replace(bank["skin_tone"], valid_range=None)
    measured = Measured(json.loads(base.criterion), load_eyes(None, None, defaults=bank.meta["eyes_spec"]))
    gentle = replace(base, unit_norm=base.unit_norm * 0.05)  # stays faces: moves the skin 1/20 of a unit
    image_only = walk_validity(G, gentle, ws, novelty, SMALL)
    with_response = walk_validity(G, gentle, ws, novelty, SMALL, measured)
    assert image_only.valid_range == (-2.0, 2.0) and image_only.own_response is None
    assert with_response.valid_range == (-0.5, 0.5) and not with_response.leaves_at_first_step
    assert max(abs(r) for r in with_response.own_response) < SMALL.min_response
    # the calibrated walk keeps moving its measure: within the image bound, the response clips nothing
    real = walk_validity(G, base, ws, novelty, SMALL, measured)
    assert real.valid_range == walk_validity(G, base, ws, novelty, SMALL).valid_range
    lo, hi = real.valid_range
    assert min(r for a, r in zip(real.alphas, real.own_response) if lo <= a <= hi) > 0.5


def test_shipped_demo_bank_records_valid_ranges_that_its_own_evidence_supports():
    bank = load_bank(shipped_bank("demo"))
    settings = ManifoldSettings(**bank.meta["manifold"])
    clipped = 0
    for s in bank.subspaces:
        assert s.valid_range is not None, s.id
        ev = s.validation["manifold"]
        lo, hi = s.walk_range
        inside = [share for a, share in zip(ev["alphas"], ev["off_share"]) if lo <= a <= hi]
        assert inside and max(inside) <= settings.max_off_share, s.id  # no walk leaves the faces within its range
        # and every step in it still moves its own measure, but the first step each way, which is
        # always kept: a gated attribute (glasses) barely moves there, before faces reach its threshold
        first = {max(a for a in ev["alphas"] if a < 0), min(a for a in ev["alphas"] if a > 0)}
        response = [r for a, r in zip(ev["alphas"], ev["own_response"]) if lo <= a <= hi and a not in first]
        assert min(response) >= settings.min_response, s.id
        clipped += s.walk_range != s.step_range
    assert clipped >= 3  # the smearing walks (face width, glasses, beard, ...) are clipped


def test_manifest_round_trips_valid_range_and_refuses_a_bad_one(tmp_path, demo):
    _, bank = demo
    sub = replace(bank["smile"], valid_range=(-1.0, 0.5))
    save_bank(Bank("b", bank.generator_fingerprint, [sub, replace(bank["age"], valid_range=None)]), tmp_path / "b")
    back = load_bank(tmp_path / "b")
    assert back["smile"].valid_range == (-1.0, 0.5) and back["smile"].walk_range == (-1.0, 0.5)
    assert back["age"].valid_range is None and back["age"].walk_range == back["age"].step_range
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert "valid_range" not in manifest["subspaces"][1]  # older readers see the format they know
    manifest["subspaces"][0]["valid_range"] = [0.5, 1.0]  # must contain 0
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="valid_range"):
        load_bank(tmp_path / "b")


def test_recipe_manifold_keys_are_checked():
    assert settings_from({"manifold_fit_faces": 100, "faces": 6}).fit_faces == 100
    with pytest.raises(UserError, match="manifold_nope"):
        settings_from({"manifold_nope": 1})
    with pytest.raises(UserError, match="manifold_fit_faces"):
        settings_from({"manifold_fit_faces": 1.5})
    with pytest.raises(UserError, match="quantile"):
        settings_from({"manifold_quantile": 1.0})
    with pytest.raises(UserError, match="min_response"):
        settings_from({"manifold_min_response": -0.1})


def test_an_audit_walks_only_the_valid_range_and_records_the_clip(tmp_path, demo):
    G, bank = demo
    clipped = replace(bank["smile"], valid_range=(-0.5, 1.0))
    whole = replace(bank["age"], valid_range=None)
    small = Bank(bank.name, bank.generator_fingerprint, [clipped, whole], bank.meta)
    clf = load_classifier(lambda x: x.mean((1, 2, 3)), {"input_size": 64, "head": "logit"})
    result = run_audit(clf, G, small, AuditSettings.of(n=4, seed=0, n_null=2, n_steps=5, device="cpu", progress=False,
                                                       out=str(tmp_path / "audit")))
    walked = result.results.groupby("subspace")["alpha"].agg(["min", "max"])
    assert tuple(walked.loc["smile"]) == (-0.5, 1.0) and tuple(walked.loc["age"]) == (-2.0, 2.0)
    subs = {s.id: s for s in result.record.bank.subspaces}
    assert subs["smile"].step_range == [-0.5, 1.0] and subs["smile"].bank_step_range == [-2.0, 2.0]
    assert subs["age"].bank_step_range is None
    summary = json.loads((tmp_path / "audit" / "summary.json").read_text())
    assert next(s for s in summary["bank"]["subspaces"] if s["id"] == "smile")["bank_step_range"] == [-2.0, 2.0]
    from iceaudit.report.model import load_report_model

    d = load_report_model(tmp_path / "audit").driver("smile")
    assert d.walked == [-0.5, 1.0] and d.bank_range == [-2.0, 2.0]


def test_bank_valid_range_command_stores_ranges_and_refuses_bad_options(tmp_path, capsys):
    copy = tmp_path / "demo-copy"
    shutil.copytree(shipped_bank("demo"), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["subspaces"] = manifest["subspaces"][:2]  # two walks keep the test quick
    for entry in manifest["subspaces"]:
        entry.pop("valid_range", None)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    before = (copy / "manifest.json").read_bytes()
    code, out, err = run_cli(capsys, "bank", "valid-range", "--bank", str(copy), "--max-off-share", "1.5")
    assert code == 2 and "max_off_share" in err and "Traceback" not in err
    assert (copy / "manifest.json").read_bytes() == before
    code, out, err = run_cli(capsys, "bank", "valid-range", "--bank", str(copy), "--fit-faces", "128",
                             "--held-out-faces", "64", "--walk-faces", "8")
    assert code in (0, None), err
    back = load_bank(copy)
    assert all(s.valid_range is not None and "manifold" in s.validation for s in back.subspaces)
    assert back.meta["manifold"]["fit_faces"] == 128
    assert "walks" in out
    sid = back.subspaces[0].id
    code, out, err = run_cli(capsys, "bank", "show", sid, "--bank", str(copy))
    assert code in (0, None) and f"valid_range: {list(back[sid].valid_range)}" in out


def test_validation_walks_only_within_the_valid_range(demo):
    from iceaudit.bank.build import bank_latents
    from iceaudit.bank.validate import validate_subspace
    from iceaudit.criteria.eyes import load_eyes
    from iceaudit.criteria.spec import Measured

    G, bank = demo
    eyes = load_eyes(None, None, defaults=bank.meta["eyes_spec"])
    sub = replace(bank["skin_tone"], valid_range=None)
    measures = {"skin_tone": Measured(json.loads(sub.criterion), eyes)}
    ws = bank_latents(G, 8, 11)
    whole = validate_subspace(G, sub, "skin_tone", measures, ws)
    inside = validate_subspace(G, replace(sub, valid_range=(-0.5, 0.25)), "skin_tone", measures, ws)
    assert whole["walked"] == [-1.0, 1.0] and inside["walked"] == [-0.5, 0.25]
    # the skin-tone walk is close to linear there: per unit, the two agree
    assert inside["own_effect"] == pytest.approx(whole["own_effect"], rel=0.3)
    assert inside["own_effect"] != whole["own_effect"]


def test_validation_measures_in_the_calibrated_sd_where_the_bank_has_one(demo):
    from iceaudit.bank.build import bank_latents
    from iceaudit.bank.validate import calibrated_scales, validate_subspace
    from iceaudit.criteria.eyes import load_eyes
    from iceaudit.criteria.spec import Measured

    G, bank = demo
    eyes = load_eyes(None, None, defaults=bank.meta["eyes_spec"])
    sub = bank["skin_tone"]
    scales = calibrated_scales(bank.subspaces)
    assert scales["skin_tone"] == sub.validation["calibration"]["sd_measure"] and len(scales) == len(bank.subspaces)
    measures = {"skin_tone": Measured(json.loads(sub.criterion), eyes)}
    ws = bank_latents(G, 8, 11)
    own = validate_subspace(G, sub, "skin_tone", measures, ws)
    cal = validate_subspace(G, sub, "skin_tone", measures, ws, scales=scales)
    doubled = validate_subspace(G, sub, "skin_tone", measures, ws, scales={"skin_tone": 2 * scales["skin_tone"]})
    assert own["sd_from"] == {"skin_tone": "validation faces"} and cal["sd_from"] == {"skin_tone": "calibration"}
    assert doubled["own_effect"] == pytest.approx(cal["own_effect"] / 2)
    assert cal["own_effect"] != own["own_effect"]  # eight faces' SD is not the calibration's
