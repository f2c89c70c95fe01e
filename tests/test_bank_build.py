"""End to end: the shipped FFHQ recipes on a tiny random-weight StyleGAN2 with random-weight
FAN and BiSeNet adapters (real weights cannot be downloaded here)."""
import json

import pytest
import tiny_stylegan
import torch

from iceaudit.bank.build import build_bank, validate_bank
from iceaudit.bank.format import load_bank
from iceaudit.bank.recipe import load_recipe
from iceaudit.criteria.base import Eyes
from iceaudit.criteria.bisenet import BiSeNetParser
from iceaudit.criteria.fan import FanLandmarks
from iceaudit.errors import UserError


def tiny_generator(seed=0):
    return tiny_stylegan.tiny_generator(seed, w_dim=8, channel_base=64, channel_max=8)


@pytest.fixture(scope="module")
def ffhq_build(tmp_path_factory):
    G = tiny_generator()
    eyes = Eyes(FanLandmarks.random(num_modules=1, size=64), BiSeNetParser.random(size=32))
    recipe = load_recipe("ffhq")
    recipe.bank.update(faces=1, calibration_faces=4, validation_faces=4)
    out = tmp_path_factory.mktemp("bank") / "ffhq-tiny"
    return G, recipe, build_bank(G, recipe, eyes, out=out, keep_failing=True), out, eyes


def test_ffhq_recipe_builds_every_subspace_with_files_and_fingerprint(ffhq_build):
    G, recipe, result, out, _ = ffhq_build
    assert (out / "manifest.json").is_file() and (out / "bases.safetensors").is_file()
    assert (out / "validation.json").is_file()
    bank = load_bank(out)
    assert bank.generator_fingerprint == G.fingerprint()
    built = {s.id for s in bank.subspaces}
    # every recipe entry is either in the bank or reported as skipped, with a reason
    assert built | set(result.skipped) == {s.id for s in recipe.subspaces}
    assert len(built) >= 1 and all(result.skipped[k] for k in result.skipped)
    style_dim = sum(l.channels for l in G.style_layers)
    for s in bank.subspaces:
        assert s.space == "S" and s.basis.shape[1] == style_dim
        assert torch.allclose(s.basis @ s.basis.T, torch.eye(s.basis.shape[0]), atol=1e-4)
        assert s.unit_norm > 0 and s.unit.startswith("1 SD")
        assert set(s.validation) >= {"own_effect", "leakage", "max_leakage", "drift_outside", "passed", "calibration"}
        assert json.loads(s.criterion)["kind"] in ("region_colour", "masked_pixels", "landmarks")
    assert "protected" in bank["face_colour"].tags if "face_colour" in built else True
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["meta"]["recipe"] == "ffhq-config-f"
    assert set(manifest["meta"]["rejected"]) <= built  # keep_failing wrote the rejected ones too


def test_failing_subspaces_are_not_shipped(ffhq_build, tmp_path):
    G, recipe, result, _, _ = ffhq_build

    rejected = set(result.rejected)
    shipped = [s for s in result.bank.subspaces if s.id not in rejected]
    assert all(s.validation["passed"] for s in shipped)
    assert all(not result.bank[s].validation["passed"] for s in rejected)


def test_bank_validate_applies_the_build_rules(ffhq_build):
    """Re-validating on the build's own validation faces gives the build's figures and verdicts:
    one validation function, the same thresholds and leakage exemptions."""
    G, recipe, _, out, eyes = ffhq_build
    bank = load_bank(out)
    stored = {s.id: dict(s.validation) for s in bank.subspaces}
    reports = validate_bank(G, bank, eyes, faces=int(recipe.setting("validation_faces", 32)),
                            seed=int(recipe.setting("seed", 0)) + 2)
    assert set(reports) == {s.id for s in bank.subspaces if s.criterion} and reports
    for sid, rep in reports.items():
        before = stored[sid]
        assert rep["passed"] == before["passed"] and rep["reasons"] == before["reasons"], sid
        assert rep["own_effect"] == pytest.approx(before["own_effect"], rel=1e-5, abs=1e-7), sid
        assert rep["leakage_unchecked"].keys() == before["leakage_unchecked"].keys(), sid
        assert bank[sid].validation["own_effect"] == rep["own_effect"]  # the entry carries the new figures


def test_literature_channels_map_to_layers_or_are_skipped():
    G = tiny_generator()
    recipe = load_recipe("ffhq-stylespace")
    recipe.bank.update(calibration_faces=4, validation_faces=4)
    for s in recipe.subspaces:
        s.criterion = None  # no eyes: channel-SD units, unverified
    result = build_bank(G, recipe, Eyes())
    # a 16x16 generator has 8 style layers: 2_175 / 2_97 (b8.conv0, 16 channels) exist but not channel 175
    assert set(result.skipped) == {s.id for s in recipe.subspaces}
    assert all("not applicable" in why for why in result.skipped.values())
    recipe.subspaces[0].options["channels"] = ["6_3"]  # b16.conv1 channel 3 on this generator
    result = build_bank(G, recipe, Eyes())
    sub = result.bank["ss_smiling"]
    assert sub.layers == ["b16.conv1"] and sub.basis.shape == (1, 4) and sub.basis[0, 3] == 1
    assert sub.verified is False and sub.unit_norm > 0


def test_a_subspace_may_override_validation_thresholds_only_with_a_reason():
    from dataclasses import replace

    from iceaudit.bank.build import _thresholds

    recipe = load_recipe("facelab")
    age = next(s for s in recipe.subspaces if s.id == "age")
    smile = next(s for s in recipe.subspaces if s.id == "smile")
    assert _thresholds(recipe, age).max_leakage == age.options["validation"]["max_leakage"] != recipe.validation["max_leakage"]
    assert _thresholds(recipe, age).min_own_effect == recipe.validation["min_own_effect"]
    assert _thresholds(recipe, smile).max_leakage == recipe.validation["max_leakage"]
    with pytest.raises(UserError, match="max_leak"):
        _thresholds(recipe, replace(smile, options={"validation": {"max_leak": 1.0}, "validation_reason": "x"}))
    with pytest.raises(UserError, match="validation_reason"):
        _thresholds(recipe, replace(smile, options={"validation": {"max_leakage": 1.0}}))


def test_a_leakage_target_exemption_needs_a_reason_and_is_refused_before_discovery():
    from dataclasses import replace

    from iceaudit.errors import UserError

    recipe = load_recipe("facelab")
    lip = next(s for s in recipe.subspaces if s.id == "lip_colour")
    assert lip.options["leakage_target"] is False and lip.options["leakage_target_reason"]
    opts = {k: v for k, v in lip.options.items() if k != "leakage_target_reason"}
    recipe.subspaces = [replace(s, options=opts) if s.id == "lip_colour" else s for s in recipe.subspaces]
    with pytest.raises(UserError, match="leakage_target_reason"):
        build_bank(None, recipe, Eyes())  # refused before the generator is touched


def test_a_sketched_jtj_builds_the_ffhq_recipe_too(tmp_path):
    """`jtj_method = "sketch"` (for S at 1024 px, where D passes per face are too many)."""
    G = tiny_generator()
    eyes = Eyes(FanLandmarks.random(num_modules=1, size=64), BiSeNetParser.random(size=32))
    recipe = load_recipe("ffhq")
    recipe.subspaces = [s for s in recipe.subspaces if s.id in ("face_colour", "hair_photometry")]
    recipe.bank.update(faces=1, calibration_faces=4, validation_faces=4, jtj_method="sketch", jtj_rank=8)
    result = build_bank(G, recipe, eyes, out=tmp_path / "b", keep_failing=True)
    meta = json.loads((tmp_path / "b" / "manifest.json").read_text())["meta"]
    assert meta["jtj_method"] == "sketch" and meta["jtj_rank"] == 8
    assert {s.id for s in result.bank.subspaces} | set(result.skipped) == {"face_colour", "hair_photometry"}
    for s in result.bank.subspaces:
        assert torch.allclose(s.basis @ s.basis.T, torch.eye(s.basis.shape[0]), atol=1e-4)
    recipe.bank.update(jtj_method="sketchy")
    with pytest.raises(UserError, match="method must be"):
        build_bank(G, recipe, eyes, out=tmp_path / "c")
