"""Our StyleGAN3 generator, loaded with official NVlabs/stylegan3 weights and init kwargs,
reproduces the official outputs (ws, per-layer styles, images) for config-T, config-R (radial
filters, 1x1 convs, conv_clamp engaged) and a short network with a user input transform.

Fixtures: tests/data/parity_sg3/ (made by make_parity_sg3.py with the official code on CPU,
float32; its docstring has the command). Tolerance: max abs difference <= 1e-3 x the largest magnitude of
the reference tensor.
"""
from __future__ import annotations

import json
from pathlib import Path

import parity_helpers
import pytest
import torch
from parity_helpers import assert_close_rel
from safetensors.torch import load_file

from iceaudit.stylegan3.networks import Generator, lowpass_filter

DATA = Path(__file__).parent / "data" / "parity_sg3"
CONFIGS = parity_helpers.case_names(DATA)


def load_case(name: str):
    return parity_helpers.load_case(DATA, name, Generator)


def test_fixtures_present():
    assert set(CONFIGS) >= {"t16", "r32", "t32_short"}


@pytest.mark.parametrize("name", CONFIGS)
def test_mapping_matches_official(name):
    G, ref = load_case(name)
    with torch.no_grad():
        assert_close_rel(G.mapping(ref["z"], None, psi=0.7), ref["ws"], "ws")
        assert_close_rel(G.mapping(ref["z"], None, psi=0.5, truncation_cutoff=2), ref["ws_psi0.5_cutoff2"], "ws cutoff")


@pytest.mark.parametrize("name", CONFIGS)
def test_styles_match_official(name):
    G, ref = load_case(name)
    with torch.no_grad():
        styles = G.styles(ref["ws"])
    assert set(styles) == {k[len("styles."):] for k in ref if k.startswith("styles.")}
    for layer, s in styles.items():
        assert_close_rel(s, ref[f"styles.{layer}"], layer)


@pytest.mark.parametrize("name", CONFIGS)
def test_images_match_official(name):
    G, ref = load_case(name)
    with torch.no_grad():
        assert_close_rel(G.synthesis(ref["ws"]), ref["img"], "img")


@pytest.mark.parametrize("name", CONFIGS)
def test_designed_filters_are_the_stored_ones(name):
    """The filters we design from the config equal those the official code stored."""
    G, _ = load_case(name)
    fresh = Generator(**json.loads((DATA / f"{name}.json").read_text()))
    stored = {k: v for k, v in G.state_dict().items() if k.endswith("_filter")}
    designed = {k: v for k, v in fresh.state_dict().items() if k.endswith("_filter")}
    assert stored.keys() == designed.keys() and stored
    for k in stored:
        torch.testing.assert_close(designed[k], stored[k], rtol=0, atol=1e-6)
    assert lowpass_filter(1, 1.0, 1.0, 4.0) is None


@pytest.mark.parametrize("name", CONFIGS)
def test_partial_synthesis_from_any_layer_is_the_full_synthesis(name):
    G, ref = load_case(name)
    with torch.no_grad():
        styles = G.styles(ref["ws"])
        full = G.synthesis_from_styles(styles)
        for sl in G.style_layers[::3]:
            state = G.synthesis_prefix(styles, sl.name)
            part = G.synthesis_suffix(state.repeat_interleave(2), {k: v.repeat_interleave(2, 0) for k, v in styles.items()})
            torch.testing.assert_close(part[::2], full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_an_official_stylegan3_pickle_loads_at_parity(tmp_path, name):
    """A network pickle in the official structure (persistent records, EasyDict kwargs) goes
    through the restricted unpickler to our StyleGAN3, fingerprinted, at parity."""
    from stylegan2_io_fakes import EasyDict, generator_tree, write_pickle

    from iceaudit.stylegan2.loaders import load_generator

    kwargs = json.loads((DATA / f"{name}.json").read_text())
    kwargs = EasyDict(kwargs, mapping_kwargs=EasyDict(kwargs["mapping_kwargs"]))
    state = load_file(str(DATA / f"{name}.weights.safetensors"))
    path = write_pickle({"G_ema": generator_tree(state, kwargs)}, tmp_path / "sg3.pkl")
    G = load_generator(path)
    _, ref = load_case(name)
    assert type(G).__module__ == "iceaudit.stylegan3.networks"
    with torch.no_grad():
        assert_close_rel(G.synthesis(ref["ws"]), ref["img"], "img")
    assert G.fingerprint() == load_case(name)[0].fingerprint()


def test_a_stylegan3_pickle_missing_a_tensor_is_refused_by_name(tmp_path):
    from stylegan2_io_fakes import EasyDict, generator_tree, write_pickle

    from iceaudit.errors import UserError
    from iceaudit.stylegan2.loaders import load_generator

    kwargs = json.loads((DATA / "t16.json").read_text())
    state = load_file(str(DATA / "t16.weights.safetensors"))
    del state["synthesis.L3_36_16.weight"]
    path = write_pickle({"G_ema": generator_tree(state, EasyDict(kwargs))}, tmp_path / "sg3.pkl")
    with pytest.raises(UserError, match="lacks tensors.*L3_36_16.weight"):
        load_generator(path)


def test_a_stylegan3_converts_to_the_native_format_and_back(tmp_path, capsys):
    """`iceaudit convert` writes a native pair that names its architecture (format 2); it loads to
    the same generator; `info` says which family; rosinality's format is refused in one line."""
    from cli_helpers import run_cli
    from stylegan2_io_fakes import EasyDict, generator_tree, write_pickle

    from iceaudit.stylegan2.loaders import load_generator

    kwargs = json.loads((DATA / "r32.json").read_text())
    state = load_file(str(DATA / "r32.weights.safetensors"))
    pkl = write_pickle({"G_ema": generator_tree(state, EasyDict(kwargs, mapping_kwargs=EasyDict(kwargs["mapping_kwargs"])))},
                       tmp_path / "sg3.pkl")
    code, _, err = run_cli(capsys, "convert", str(pkl), str(tmp_path / "native.safetensors"))
    assert code == 0, err
    config = json.loads((tmp_path / "native.json").read_text())
    assert config["format_version"] == 2 and config["architecture"] == "stylegan3"
    G, ref = load_case("r32")
    native = load_generator(tmp_path / "native.safetensors")
    assert native.fingerprint() == G.fingerprint()
    with torch.no_grad():
        assert_close_rel(native.synthesis(ref["ws"]), ref["img"], "img")
    (tmp_path / "native.json").unlink()  # the weights' header alone carries the architecture too
    assert load_generator(tmp_path / "native.safetensors").fingerprint() == G.fingerprint()

    code, out, err = run_cli(capsys, "info", str(pkl), "--json")
    assert code == 0, err
    assert json.loads(out)["family"] == "stylegan3-r" and json.loads(out)["style_layers"][0]["name"] == "input"
    code, _, err = run_cli(capsys, "convert", str(pkl), str(tmp_path / "r.pt"))
    assert code == 2 and "StyleGAN2 generators only" in err and not (tmp_path / "r.pt").exists()


def test_a_stylegan3_audit_in_reduced_precision_is_refused_in_one_line():
    from iceaudit.audit.runner import _precision
    from iceaudit.errors import UserError

    G, _ = load_case("t16")
    with pytest.raises(UserError, match="stylegan3.*float32 only"):
        with _precision(G, None, "bf16"):
            pass
