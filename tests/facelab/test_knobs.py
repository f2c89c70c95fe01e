"""Style knobs: one style channel per knob factor, in a tiny generator and in the shipped one."""
from __future__ import annotations

import json

import pytest
import torch

from iceaudit.facelab.factors import FACTOR_NAMES
from iceaudit.facelab.train.knobs import Knob, KnobConfig, _set_knobs, choose_knobs, factor_directions, route_through_knobs, \
    train_knobs, tune_and_export
from iceaudit.facelab.latent import normal_coords, phi, projection, sample_z
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
    return KnobConfig(steps=steps, batch=4, dataset_size=16, threads=1, checkpoint_every=1,
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


def test_factor_directions_finds_where_the_mapping_puts_the_factor(monkeypatch):
    G = _tiny()
    a = projection()
    planted = torch.nn.functional.normalize(torch.randn(2, G.w_dim, generator=torch.Generator().manual_seed(2)), dim=1)
    mix = torch.randn(512, G.w_dim, generator=torch.Generator().manual_seed(3)) * 0.01
    mix = mix - a.T @ (a @ mix)  # clutter from the latent directions that move no factor

    class Planted(torch.nn.Module):  # skin tone -> +planted[0], smile -> -planted[1], plus clutter
        def forward(self, z, c, skip_w_avg_update=False):
            u = z @ a.T
            w = torch.tanh(u[:, :1]) * planted[0] - 2 * u[:, 7:8] * planted[1] + z @ mix
            return w[:, None].repeat(1, G.num_ws, 1)

    monkeypatch.setattr(G, "mapping", Planted())
    d = factor_directions(G, ["skin_tone", "smile"], n=64)
    assert d.shape == (2, G.w_dim)
    assert float(d[0] @ planted[0]) > 0.999  # oriented so that the coordinate grows with the factor
    assert float(d[1] @ planted[1]) < -0.999


def test_routing_makes_the_knob_the_only_way_the_factor_reaches_the_styles():
    G = _tiny()
    knobs = [Knob("skin_tone", "b32.conv0", 3, mean=2.0, std=-0.8), Knob("smile", "b16.conv0", 5, mean=1.0, std=0.5)]
    d = torch.nn.functional.normalize(torch.randn(2, G.w_dim, generator=torch.Generator().manual_seed(4)), dim=1)
    route_through_knobs(G, knobs, d, n=256)
    w = G.mapping(sample_z(8, 9), None, skip_w_avg_update=True)[:, 0]
    coords = w @ torch.linalg.pinv(d)

    def styles(w):
        with torch.no_grad():
            return G.styles(w[:, None].repeat(1, G.num_ws, 1))

    base = styles(w)
    for k, knob in enumerate(knobs):
        moved = styles(w + 1.5 * d[k][None])  # the factor's coordinate up by 1.5
        for name in base:
            change = moved[name] - base[name]
            if name == knob.layer:
                step = change[:, knob.channel]
                assert torch.allclose(step, step[:1].expand_as(step), atol=1e-4) and step.abs().min() > 1e-3
                change[:, knob.channel] = 0
            assert change.abs().max() < 1e-4, (knob.factor, name)  # no other style saw the move
    # on the mean w, the knob sits at its mean: knob unit = standardised coordinate, sign = std's
    w_all = G.mapping(sample_z(256, 31_337), None, skip_w_avg_update=True)[:, 0]
    s = styles(w_all)
    for k, knob in enumerate(knobs):
        x = s[knob.layer][:, knob.channel]
        assert float(x.mean()) == pytest.approx(knob.mean, abs=1e-3)
        assert float(x.std()) == pytest.approx(abs(knob.std), rel=1e-3)
    assert torch.corrcoef(torch.stack([base["b32.conv0"][:, 3], coords[:, 0]]))[0, 1] < -0.999


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
    assert meta["source"] == {"generator": str(tmp_path / "base.safetensors"), "fingerprint": G.fingerprint()}
    assert tuned.fingerprint() != G.fingerprint()
    logs = []
    again, _ = train_knobs(load_generator(tmp_path / "base.safetensors"), _cfg(2), tmp_path / "work", logs.append)
    assert "resumed at step 2" in logs and again.fingerprint() == tuned.fingerprint()
    with pytest.raises(UserError, match="already has style knobs"):
        tune_and_export(tmp_path / "tuned.safetensors", _cfg(2), tmp_path / "work2", tmp_path / "again", log=lambda m: None)


def test_training_keeps_the_routing_exact(tmp_path):
    import copy

    base = _tiny()
    routed = copy.deepcopy(base)
    knobs = choose_knobs(routed, TINY_KNOBS)
    directions = factor_directions(routed, list(TINY_KNOBS))
    route_through_knobs(routed, knobs, directions)
    tuned, knobs_used = train_knobs(copy.deepcopy(base), _cfg(3), tmp_path, log=lambda m: None)
    assert knobs_used == knobs
    before, after = dict(routed.named_parameters()), dict(tuned.named_parameters())
    assert all(torch.equal(after[n], before[n]) for n in after if n.startswith("mapping"))  # mapping frozen
    synthesis = [n for n in after if n.startswith("synthesis")]
    assert sum(not torch.equal(after[n], before[n]) for n in synthesis) > len(synthesis) // 2  # the rest learned
    w = tuned.mapping(sample_z(6, 5), None, skip_w_avg_update=True)
    with torch.no_grad():
        for k, knob in enumerate(knobs):
            s0, s1 = tuned.styles(w), tuned.styles(w + 0.7 * directions[k])
            r0, r1 = routed.styles(w), routed.styles(w + 0.7 * directions[k])
            col = (knob.layer, knob.channel)
            assert torch.allclose(s1[col[0]][:, col[1]], r1[col[0]][:, col[1]], atol=1e-5)  # the knob row as routed
            assert torch.allclose(s0[col[0]][:, col[1]], r0[col[0]][:, col[1]], atol=1e-5)
            for name in s0:
                change = s1[name] - s0[name]
                if name == knob.layer:
                    change[:, knob.channel] = 0
                assert change.abs().max() < 1e-4, (knob.factor, name)  # still blind to the factor


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
    ["facelab", "evaluate-readers", "--assets", "assets", "--generator", "no-such-generator.safetensors"],
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


@pytest.mark.parametrize("knob, message", [
    ("skin_tone", "FACTOR=LAYER"),
    ("skin_colour=b16.conv0", "unknown FaceLab factor 'skin_colour'"),
])
def test_cli_bad_knob_exits_2_before_anything_is_written(knob, message, tmp_path, monkeypatch, capsys):
    from iceaudit.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["facelab", "train-knobs", "--knob", knob])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_cli_knob_layers_reach_the_tuning(tmp_path, monkeypatch):
    import iceaudit.facelab.train.knobs as knobs_module
    from iceaudit.cli import main

    seen = {}
    monkeypatch.setattr(knobs_module, "tune_and_export", lambda generator, cfg, *a, **k: seen.update(cfg.knobs))
    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main(["facelab", "train-knobs", *args])
        assert not exc.value.code

    run("--knob", "skin_tone=b8.conv1", "--knob", "age=b16.conv0")
    assert seen == {"skin_tone": "b8.conv1", "age": "b16.conv0"}
    seen.clear()
    run()
    assert seen == knobs_module.KNOBS
