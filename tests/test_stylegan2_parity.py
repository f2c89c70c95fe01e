"""Our Generator, loaded with the official stylegan2-ada-pytorch weights and
init kwargs, reproduces the official outputs (ws, per-layer styles, images).

Fixtures: tests/data/parity/ (made by make_parity.py with the official code on
CPU; see the README there). Tolerance: max abs difference ≤ 1e-3 × the
largest magnitude of the reference tensor, float32, CPU.
"""
from __future__ import annotations

from pathlib import Path

import parity_helpers
import pytest
import torch
from parity_helpers import assert_close_rel

from iceaudit.stylegan2.networks import Generator

DATA = Path(__file__).parent / "data" / "parity"
CONFIGS = parity_helpers.case_names(DATA)


def load_case(name: str):
    return parity_helpers.load_case(DATA, name, Generator)


def test_fixtures_present():
    assert len(CONFIGS) >= 3, CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_mapping_matches_official(name):
    G, ref = load_case(name)
    c = ref["c"] if G.c_dim else None
    with torch.no_grad():
        assert_close_rel(G.mapping(ref["z"], c, psi=0.7), ref["ws"], "ws psi 0.7")
        assert_close_rel(G.mapping(ref["z"], c, psi=0.5, truncation_cutoff=2), ref["ws_psi0.5_cutoff2"], "ws cutoff")


@pytest.mark.parametrize("name", CONFIGS)
def test_styles_match_official(name):
    G, ref = load_case(name)
    with torch.no_grad():
        styles = G.styles(ref["ws"])
    ref_names = [k[len("styles."):] for k in ref if k.startswith("styles.")]
    assert sorted(ref_names) == sorted(styles)
    assert [sl.name for sl in G.style_layers] == list(styles)
    for layer, s in styles.items():
        assert_close_rel(s, ref[f"styles.{layer}"], f"styles {layer}")


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("name", CONFIGS)
def test_images_match_official(name, fused):
    G, ref = load_case(name)
    with torch.no_grad():
        img = G.synthesis(ref["ws"], noise_mode="const", fused_modconv=fused)
        img_none = G.synthesis(ref["ws"], noise_mode="none", fused_modconv=fused)
        img_full = G(ref["z"], ref["c"] if G.c_dim else None, psi=0.7, noise_mode="const")
    assert_close_rel(img, ref["img"], "image (official fused)")
    assert_close_rel(img, ref["img_nonfused"], "image (official non-fused)")
    assert_close_rel(img_none, ref["img_noise_none"], "image noise_mode='none'")
    assert_close_rel(img_full, ref["img"], "G(z) end to end")
