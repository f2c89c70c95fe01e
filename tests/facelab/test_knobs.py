"""Style knobs: one style channel per knob factor, in a tiny generator and in the shipped one."""
from __future__ import annotations

import json

import pytest
import torch

from iceaudit.facelab.factors import FACTOR_NAMES
from iceaudit.facelab.knobs import Knob, KnobConfig, _set_knobs, choose_knobs, train_knobs, tune_and_export
from iceaudit.facelab.latent import normal_coords, phi, sample_z
from iceaudit.stylegan2.loaders import load_generator, save_native
from iceaudit.stylegan2.networks import Generator

TINY = dict(
    z_dim=512, c_dim=0, w_dim=32, img_resolution=64, img_channels=3,
    mapping_kwargs=dict(num_layers=2, lr_multiplier=1.0),
    synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=None),
)
TINY_KNOBS = {"skin_tone": "b32.conv0", "smile": "b16.conv0"}


def _tiny() -> Generator:
    torch.manual_seed(0)
    return Generator(**json.loads(json.dumps(TINY))).eval()


def _cfg(steps: int) -> KnobConfig:
    return KnobConfig(steps=steps, batch=4, dataset_size=16, edits=8, threads=1, checkpoint_every=1,
                      precision="fp32", knobs=dict(TINY_KNOBS))


def test_normal_coords_are_what_phi_squashes():
    from iceaudit.facelab.factors import from_normal

    z = sample_z(8, 3)
    assert torch.allclose(from_normal(normal_coords(z)), phi(z), atol=1e-5)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_choose_knobs_takes_the_channel_that_already_follows_the_factor(sign, monkeypatch):
    G = _tiny()
    n = 512
    skin = normal_coords(sample_z(n, 31_337))[:, FACTOR_NAMES.index("skin_tone")]  # choose_knobs' own draw
    noise = torch.randn(n, 8, generator=torch.Generator().manual_seed(1))
    planted = noise.clone()
    planted[:, 3] = 5.0 + sign * 0.3 * skin + 0.1 * noise[:, 3]  # follows skin tone, mean 5
    planted[:, 5] = 0.2 * skin + noise[:, 5]  # follows it too, more weakly
    monkeypatch.setattr(G, "styles", lambda ws: {"b32.conv0": planted})
    (knob,) = choose_knobs(G, {"skin_tone": "b32.conv0"}, n=n)
    assert knob.channel == 3 and knob.name == "b32.conv0:3"
    assert knob.mean == pytest.approx(5.0, abs=0.05)
    assert knob.std == pytest.approx(sign * 0.4 * knob.mean)  # widened to 0.4 x mean, sense kept


def test_choose_knobs_rejects_unknown_factor_and_layer():
    from iceaudit.errors import UserError

    with pytest.raises(UserError, match="unknown factor"):
        choose_knobs(_tiny(), {"smiles": "b16.conv0"}, n=16)
    with pytest.raises(UserError, match="not in this generator"):
        choose_knobs(_tiny(), {"smile": "b128.conv0"}, n=16)


def test_set_knobs_moves_only_the_knob_channel_of_the_chosen_faces():
    styles = {"a": torch.zeros(3, 4), "b": torch.ones(3, 2)}
    knobs = [Knob("skin_tone", "a", 2, mean=1.0, std=0.5), Knob("smile", "b", 0, mean=-1.0, std=2.0)]
    out = _set_knobs(styles, knobs, torch.tensor([0, 1, -1]), torch.tensor([2.0, 1.0, 5.0]))
    assert out["a"][0, 2] == 2.0 and out["a"][[1, 2]].abs().sum() == 0 and out["a"][0, [0, 1, 3]].abs().sum() == 0
    assert out["b"][1, 0] == 1.0 and out["b"][1, 1] == 1.0 and (out["b"][[0, 2]] == 1.0).all()
    assert styles["a"].abs().sum() == 0  # out of place


def test_train_knobs_resumes_and_export_refuses_a_second_tuning(tmp_path):
    from iceaudit.errors import UserError

    G = _tiny()
    save_native(G, tmp_path / "base", metadata={"name": "tiny"})
    meta = tune_and_export(tmp_path / "base.safetensors", _cfg(2), tmp_path / "work", tmp_path / "tuned", log=lambda m: None)
    assert [k["factor"] for k in meta["style_knobs"]] == ["skin_tone", "smile"]
    tuned = load_generator(tmp_path / "tuned.safetensors")
    assert tuned.provenance["metadata"]["style_knobs"] == meta["style_knobs"]
    assert tuned.fingerprint() != G.fingerprint()
    logs = []
    again, _ = train_knobs(load_generator(tmp_path / "base.safetensors"), _cfg(2), tmp_path / "work", logs.append)
    assert "resumed at step 2" in logs and again.fingerprint() == tuned.fingerprint()
    with pytest.raises(UserError, match="already has style knobs"):
        tune_and_export(tmp_path / "tuned.safetensors", _cfg(2), tmp_path / "work2", tmp_path / "again", log=lambda m: None)


def test_rescore_on_generator_rewrites_only_the_generator_figures(tmp_path):
    import shutil

    from iceaudit.facelab.reader import ASSETS, rescore_on_generator

    for ext in ("json", "safetensors"):
        shutil.copy(ASSETS / f"age_estimator.{ext}", tmp_path / f"age_estimator.{ext}")
    before = json.loads((tmp_path / "age_estimator.json").read_text())
    G = _tiny()
    out = rescore_on_generator(G, assets=("age_estimator", "reader"), directory=tmp_path)  # no reader here: skipped
    after = json.loads((tmp_path / "age_estimator.json").read_text())
    assert list(out) == ["age_estimator"]
    assert after["generator_fingerprint"] == G.fingerprint()
    assert after["held_out"]["renders"] == before["held_out"]["renders"]
    # a random tiny generator draws no faces: the estimator cannot read age from it
    assert after["held_out"]["generator"]["age"]["r2"] < 0.2 < before["held_out"]["generator"]["age"]["r2"]


@pytest.mark.parametrize("args", [
    ["facelab", "train-knobs", "--generator", "no-such-generator.safetensors"],
    ["facelab", "evaluate-readers", "--generator", "no-such-generator.safetensors"],
])
def test_cli_missing_generator_exits_2(args, tmp_path, monkeypatch, capsys):
    from iceaudit.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing written before the input was checked
