"""Loaders: rosinality parity, native format, round trips, fingerprints, sniffing."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from stylegan2_io_fakes import EasyDict, generator_tree, write_pickle  # noqa: E402

from iceaudit import load_generator  # noqa: E402
from iceaudit.errors import UserError  # noqa: E402
from iceaudit.stylegan2 import loaders  # noqa: E402
from iceaudit.stylegan2.generate import parse_seeds, z_from_seeds  # noqa: E402
from iceaudit.stylegan2.loaders import save_native, save_rosinality  # noqa: E402
from iceaudit.stylegan2.networks import Generator  # noqa: E402

DATA = Path(__file__).parent / "data"
ROSI = DATA / "rosinality" / "tiny16.pt"
ROSI_OUT = DATA / "rosinality" / "tiny16_outputs.safetensors"
PARITY = DATA / "parity"
PARITY_CASES = ["skip32_map2", "skip64_map8_clamp256", "resnet32_cond_clamp", "orig16"]
REL_TOL = 1e-4  # measured: <= 3e-7 relative


def assert_close_rel(ours, ref, what):
    err = (ours - ref).abs().max().item()
    scale = ref.abs().max().item()
    assert err <= REL_TOL * scale, f"{what}: max abs diff {err:.3g} vs scale {scale:.3g}"


def render(G, z=None, psi=0.7, c=None):
    if z is None:
        z = z_from_seeds([0, 1], G.z_dim)
    if c is None and G.c_dim:
        c = torch.eye(G.c_dim)[: len(z)]
    with torch.no_grad():
        return G(z, c, psi=psi)


# --- rosinality ------------------------------------------------------------------

ROSI_NAMES = {"conv1": "b4.conv1", "to_rgb1": "b4.torgb", "convs.0": "b8.conv0", "convs.1": "b8.conv1",
              "to_rgbs.0": "b8.torgb", "convs.2": "b16.conv0", "convs.3": "b16.conv1", "to_rgbs.1": "b16.torgb"}


def test_rosinality_matches_rosinality_forward_pass():
    G = load_generator(ROSI)
    ref = load_file(str(ROSI_OUT))
    assert (G.img_resolution, G.z_dim, G.num_ws, G.mapping.num_layers) == (16, 32, 6, 3)
    with torch.no_grad():
        for psi, key in ((1.0, "psi1"), (0.7, "psi07")):
            ws = G.mapping(ref["z"], None, psi=psi)
            assert_close_rel(ws, ref[f"ws_{key}"], f"ws psi={psi}")
            for fused in (True, False):
                img = G.synthesis(ws, noise_mode="const", fused_modconv=fused)
                assert_close_rel(img, ref[f"img_{key}"], f"image psi={psi} fused={fused}")
        styles = G.styles(G.mapping(ref["z"], None))
    for rosi_name, official in ROSI_NAMES.items():
        assert_close_rel(styles[official], ref[f"style/{rosi_name}"], f"style {official}")


def test_rosinality_legacy_torch_format(tmp_path):
    """Checkpoints saved by torch < 1.6 (non-zip serialisation) load the same."""
    torch.save(torch.load(ROSI, weights_only=True), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert not (tmp_path / "old.pt").read_bytes().startswith(b"PK")
    assert load_generator(tmp_path / "old.pt").fingerprint() == load_generator(ROSI).fingerprint()


def test_rosinality_training_checkpoint_without_latent_avg(tmp_path):
    state = torch.load(ROSI, weights_only=True)["g_ema"]
    ckpt = {"g": state, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}, "g_ema": state,
            "g_optim": {"state": {}, "param_groups": []}, "args": argparse.Namespace(size=16, n_mlp=3),
            "ada_aug_p": 0.0}
    torch.save(ckpt, tmp_path / "000100.pt")
    G = load_generator(tmp_path / "000100.pt")
    assert any("w_avg estimated" in note for note in G.provenance["notes"])
    z = torch.randn(20_000, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        mean_w = G.mapping(z, None)[:, 0].mean(0)
    assert torch.allclose(G.mapping.w_avg, mean_w, atol=0.05 * mean_w.abs().max().item())
    ref = load_file(str(ROSI_OUT))  # psi=1 does not use w_avg: still rosinality's images
    with torch.no_grad():
        assert_close_rel(G(ref["z"], None, psi=1.0), ref["img_psi1"], "image")


def test_rosinality_native_rosinality_round_trip_is_exact(tmp_path):
    G = load_generator(ROSI)
    save_native(G, tmp_path / "net")
    G_native = load_generator(tmp_path / "net.safetensors")
    assert torch.equal(render(G_native), render(G))
    assert G_native.fingerprint() == G.fingerprint()
    save_rosinality(G_native, tmp_path / "back.pt")
    orig, back = torch.load(ROSI, weights_only=True), torch.load(tmp_path / "back.pt", weights_only=True)
    assert set(back) == {"g_ema", "latent_avg"}
    assert set(back["g_ema"]) == set(orig["g_ema"])
    for key, value in orig["g_ema"].items():
        assert torch.equal(back["g_ema"][key], value), key
    assert torch.equal(back["latent_avg"], orig["latent_avg"])


def test_rosinality_export_rescales_other_mapping_lr(tmp_path):
    torch.manual_seed(1)
    G = Generator(16, 0, 16, 8, 3, mapping_kwargs=dict(num_layers=2, lr_multiplier=0.1),
                  synthesis_kwargs=dict(channel_base=64, channel_max=16)).eval()
    with torch.no_grad():
        G.mapping.fc0.bias.normal_()
        G.mapping.w_avg.normal_()
    save_rosinality(G, tmp_path / "g.pt")
    G2 = load_generator(tmp_path / "g.pt")
    assert G2.init_kwargs["mapping_kwargs"]["lr_multiplier"] == 0.01
    assert_close_rel(render(G2), render(G), "image after lr rescale")


def test_rosinality_refuses_unrepresentable_config(tmp_path):
    G = Generator(16, 2, 16, 8, 3, synthesis_kwargs=dict(channel_base=64, channel_max=16))
    with pytest.raises(UserError, match="class conditioning"):
        save_rosinality(G, tmp_path / "g.pt")
    assert not (tmp_path / "g.pt").exists()


# --- NVIDIA pickles built from the official parity fixtures ----------------------------


def official_case(name):
    kwargs = json.loads((PARITY / f"{name}.json").read_text())
    state = load_file(str(PARITY / f"{name}.weights.safetensors"))
    return kwargs, state, load_file(str(PARITY / f"{name}.outputs.safetensors"))


def official_pickle(name, path):
    kwargs, state, _ = official_case(name)
    init = EasyDict({k: EasyDict(v) if isinstance(v, dict) else v for k, v in kwargs.items()})
    return write_pickle({"G_ema": generator_tree(state, init), "augment_pipe": None}, path)


@pytest.mark.parametrize("name", PARITY_CASES)
def test_official_pickle_reproduces_official_outputs_and_survives_native(tmp_path, name):
    _, _, ref = official_case(name)
    G = load_generator(official_pickle(name, tmp_path / "net.pkl"))
    c = ref.get("c")
    with torch.no_grad():
        ws = G.mapping(ref["z"], c, psi=0.7)
        assert_close_rel(ws, ref["ws"], "ws")
        img = G.synthesis(ws, noise_mode="const")
    assert_close_rel(img, ref["img"], "image")
    save_native(G, tmp_path / "net")
    G2 = load_generator(tmp_path / "net.json")
    with torch.no_grad():
        assert torch.equal(G2.synthesis(G2.mapping(ref["z"], c, psi=0.7)), img)
    assert G2.fingerprint() == G.fingerprint()
    assert G2.provenance["metadata"]["source"]["format"] == "nvidia-pickle"


def test_fingerprint_is_the_same_across_all_loaders(tmp_path):
    kwargs, state, _ = official_case("skip32_map2")
    direct = Generator(**kwargs)
    direct.load_state_dict(state)
    from_pickle = load_generator(official_pickle("skip32_map2", tmp_path / "net.pkl"))
    save_native(from_pickle, tmp_path / "native")
    save_rosinality(from_pickle, tmp_path / "net.pt")
    prints = {fmt: load_generator(p).fingerprint() for fmt, p in
              [("pkl", tmp_path / "net.pkl"), ("native", tmp_path / "native.safetensors"),
               ("rosinality", tmp_path / "net.pt")]}
    assert set(prints.values()) == {direct.fingerprint()}, prints


# --- native format ------------------------------------------------------------------


def test_native_pair_names_and_weights_only_file(tmp_path):
    G = load_generator(ROSI)
    weights, config = save_native(G, tmp_path / "g.safetensors", metadata={"note": "hi"})
    assert (weights.name, config.name) == ("g.safetensors", "g.json")
    meta = json.loads(config.read_text())
    assert meta["format"] == "iceaudit-generator" and meta["format_version"] == 1
    assert meta["fingerprint"] == G.fingerprint() and meta["metadata"]["note"] == "hi"
    for spelling in ("g", "g.json", "g.safetensors"):
        assert load_generator(tmp_path / spelling).fingerprint() == G.fingerprint()
    config.unlink()  # the safetensors header carries the config too
    assert torch.equal(render(load_generator(weights)), render(G))


def test_native_refuses_modified_weights(tmp_path):
    G = load_generator(ROSI)
    weights, _ = save_native(G, tmp_path / "g")
    state = load_file(str(weights))
    state["mapping.fc0.bias"] = state["mapping.fc0.bias"] + 1e-3
    save_file(state, str(weights))
    with pytest.raises(UserError, match="does not match its recorded fingerprint"):
        load_generator(weights)


def test_native_refuses_newer_format(tmp_path):
    _, config = save_native(load_generator(ROSI), tmp_path / "g")
    meta = json.loads(config.read_text())
    meta["format_version"] = 99
    config.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="format_version 99"):
        load_generator(config)


def test_save_native_keeps_old_files_when_writing_fails(tmp_path, monkeypatch):
    G = load_generator(ROSI)
    weights, config = save_native(G, tmp_path / "g")
    before = (weights.read_bytes(), config.read_text())
    import safetensors.torch

    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError):
        save_native(G, tmp_path / "g")
    assert (weights.read_bytes(), config.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.safetensors"]  # no temp left


# --- dispatch and names ---------------------------------------------------------------


def test_demo_missing_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "DEMO_PATH", tmp_path / "nope" / "demo_generator.safetensors")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        load_generator("demo")
    assert "iceaudit facelab train-generator" in err.value.hint


def test_demo_name_loads_the_shipped_file(tmp_path, monkeypatch):
    G = load_generator(ROSI)
    weights, _ = save_native(G, tmp_path / "demo_generator")
    monkeypatch.setattr(loaders, "DEMO_PATH", weights)
    monkeypatch.chdir(tmp_path)
    assert load_generator("demo").fingerprint() == G.fingerprint()


@pytest.mark.parametrize("content,expected", [
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "PNG image"),
    (b"hello, I am a text file\n", "text file"),
    (b"", "empty"),
    (bytes(range(1, 40)) + b"\xff\xfe", "unrecognised binary"),
])
def test_wrong_formats_are_named(tmp_path, content, expected):
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    with pytest.raises(UserError, match=expected):
        load_generator(path)


def test_cuda_request_without_gpu_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # CI and dev machines have none
    with pytest.raises(UserError, match="no CUDA GPU"):
        load_generator(ROSI, device="cuda")


def test_parse_seeds_and_official_z():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds("5") == [5]
    for bad in ("", "a", "3-1", "1,,2", "-1", "1-2-3", "0-99999999999"):
        with pytest.raises(UserError, match="bad seeds"):
            parse_seeds(bad)
    z = z_from_seeds([3, 1], 8)
    assert z.dtype == torch.float32
    assert np.array_equal(z[0].numpy(), np.random.RandomState(3).randn(1, 8)[0].astype(np.float32))
