"""Behaviour of the StyleGAN2 engine beyond parity: StyleSpace, partial
synthesis, edits, fused vs non-fused, truncation, fingerprint, batching."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from iceaudit.stylegan2 import ops
from iceaudit.stylegan2.edits import edit_channel, edit_styles, edit_w, first_edited_layer, repeat_styles
from iceaudit.stylegan2.networks import Generator
from iceaudit.audit.style_space import layer_offsets

PARITY = Path(__file__).parent / "data" / "parity"


def fixture_generator(name: str) -> Generator:
    """Official-format weights with non-zero noise strengths, biases and w_avg."""
    G = Generator(**json.loads((PARITY / f"{name}.json").read_text())).eval()
    G.load_state_dict(load_file(str(PARITY / f"{name}.weights.safetensors")))
    return G


@pytest.fixture(scope="module")
def G() -> Generator:
    return fixture_generator("skip32_map2")


@pytest.fixture(scope="module", params=["skip32_map2", "resnet32_cond_clamp", "orig16"])
def G_any(request) -> Generator:
    return fixture_generator(request.param)


def sample_ws(G: Generator, n: int = 3, seed: int = 0, psi: float = 0.7) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=gen)
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else None
    with torch.no_grad():
        return G.mapping(z, c, psi=psi)


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


# -- StyleSpace layout --------------------------------------------------------

def test_style_layers_official_names_and_ws_indices(G):
    got = [(sl.name, sl.channels, sl.ws_index) for sl in G.style_layers]
    # channel_base 256, channel_max 32: 4:32, 8:32, 16:16, 32:8
    assert got == [("b4.conv1", 32, 0), ("b4.torgb", 32, 1), ("b8.conv0", 32, 1), ("b8.conv1", 32, 2),
                   ("b8.torgb", 32, 3), ("b16.conv0", 32, 3), ("b16.conv1", 16, 4), ("b16.torgb", 16, 5),
                   ("b32.conv0", 16, 5), ("b32.conv1", 8, 6), ("b32.torgb", 8, 7)]
    assert G.num_ws == 8 and G.style_dim == sum(c for _, c, _ in got)


def test_styles_ordered_and_pack_roundtrip(G):
    ws = sample_ws(G)
    styles = G.styles(ws)
    assert list(styles) == [sl.name for sl in G.style_layers]
    vec = G.pack_styles(styles)
    assert vec.shape == (3, G.style_dim)
    back = G.unpack_styles(vec)
    assert list(back) == list(styles)
    for name in styles:
        assert torch.equal(back[name], styles[name])
    start, stop = layer_offsets(G)["b16.conv1"]
    assert torch.equal(vec[:, start:stop], styles["b16.conv1"])


def test_synthesis_from_styles_equals_synthesis(G_any):
    ws = sample_ws(G_any)
    with torch.no_grad():
        a = G_any.synthesis(ws)
        b = G_any.synthesis_from_styles(G_any.styles(ws))
    assert torch.equal(a, b)


# -- partial synthesis ----------------------------------------------------------

@pytest.mark.parametrize("fused", [False, True])
def test_partial_equals_full_at_every_layer(G_any, fused):
    ws = sample_ws(G_any)
    with torch.no_grad():
        styles = G_any.styles(ws)
        full = G_any.synthesis_from_styles(styles, fused_modconv=fused)
        for sl in G_any.style_layers:  # early, middle, late and everything between
            state = G_any.synthesis_prefix(styles, sl.name, fused_modconv=fused)
            part = G_any.synthesis_suffix(state, styles, fused_modconv=fused)
            assert torch.equal(part, full), sl.name


@pytest.mark.parametrize("start", ["b4.torgb", "b16.conv0", "b16.conv1", "b32.torgb"])
def test_partial_with_repeated_edits_equals_full(G, start):
    ws = sample_ws(G, n=2)
    alphas = torch.tensor([-3.0, 0.0, 2.0, 5.0])
    with torch.no_grad():
        styles = G.styles(ws)
        edited = edit_channel(styles, start, channel=3, alphas=alphas)
        state = G.synthesis_prefix(styles, start).repeat_interleave(len(alphas))
        part = G.synthesis_suffix(state, edited)
        full = G.synthesis_from_styles(edited)
        plain = G.synthesis_from_styles(styles)
    assert part.shape == (8, 3, 32, 32)
    assert max_rel(part, full) < 1e-5
    # alpha 0 rows reproduce the unedited faces, other rows differ
    assert max_rel(part[1::4], plain) < 1e-5
    assert max_rel(part[0::4], plain) > 1e-3


def test_resnet_state_carries_shortcut():
    G = fixture_generator("resnet32_cond_clamp")
    with torch.no_grad():
        state = G.synthesis_prefix(G.styles(sample_ws(G)), "b16.conv1")
    assert state.shortcut is not None and state.img is None
    assert state.repeat_interleave(2).shortcut.shape[0] == 6


def test_suffix_needs_only_later_styles(G):
    ws = sample_ws(G)
    with torch.no_grad():
        styles = G.styles(ws)
        state = G.synthesis_prefix(styles, "b16.conv1")
        later = {k: v for k, v in styles.items() if k in ("b16.conv1", "b16.torgb", "b32.conv0", "b32.conv1", "b32.torgb")}
        assert torch.equal(G.synthesis_suffix(state, later), G.synthesis_from_styles(styles))
        with pytest.raises(KeyError):
            G.synthesis_suffix(state, {k: v for k, v in later.items() if k != "b32.conv0"})
        with pytest.raises(ValueError):
            G.synthesis_suffix(state.repeat_interleave(2), later)  # batch mismatch
    with pytest.raises(KeyError):
        G.synthesis_prefix(styles, "b64.conv0")


def test_channel_edit_changes_only_that_layer_onward(G):
    ws = sample_ws(G)
    layer = "b16.conv0"
    with torch.no_grad():
        styles = G.styles(ws)
        edited = edit_channel(styles, layer, channel=5, alphas=4.0)
        for name in styles:
            assert torch.equal(edited[name], styles[name]) == (name != layer), name
        diff = (edited[layer] - styles[layer]).abs()
        assert diff[:, 5].min() > 3.99 and diff[:, torch.arange(32) != 5].max() == 0
        # everything computed before the layer is untouched ...
        s0 = G.synthesis_prefix(styles, layer)
        s1 = G.synthesis_prefix(edited, layer)
        assert torch.equal(s0.x, s1.x) and torch.equal(s0.img, s1.img)
        # ... the layer's output and the image change
        out0 = G.synthesis.b16.conv0.forward_styles(s0.x, styles[layer])
        out1 = G.synthesis.b16.conv0.forward_styles(s1.x, edited[layer])
        assert (out0 - out1).abs().max() > 1e-3
        assert max_rel(G.synthesis_from_styles(edited), G.synthesis_from_styles(styles)) > 1e-3


def test_w_plus_edit_touches_only_chosen_indices(G):
    ws = sample_ws(G, n=2)
    d = torch.randn(G.w_dim)
    out = edit_w(ws, d, torch.tensor([0.0, 1.5]), ws_indices=[3, 4])
    assert out.shape == (4, G.num_ws, G.w_dim)
    assert torch.equal(out[0::2], ws)
    delta = out[1::2] - ws
    assert delta[:, [0, 1, 2, 5, 6, 7]].abs().max() == 0
    assert torch.allclose(delta[:, 3], 1.5 * d.expand(2, -1), atol=1e-6)
    assert first_edited_layer(G, ws_indices=[3, 4]) == "b8.torgb"  # b8.torgb reads ws[3]
    assert first_edited_layer(G, layers=["b32.conv1", "b16.conv1"]) == "b16.conv1"
    # W+ edits through partial synthesis match full synthesis
    with torch.no_grad():
        start = first_edited_layer(G, ws_indices=[3, 4])
        state = G.synthesis_prefix(G.styles(ws), start).repeat_interleave(2)
        assert max_rel(G.synthesis_suffix(state, G.styles(out)), G.synthesis(out)) < 1e-5


def test_edit_styles_direction_and_repeat(G):
    styles = G.styles(sample_ws(G, n=2))
    d = {"b8.conv1": torch.randn(32)}
    out = edit_styles(styles, d, torch.tensor([1.0, 2.0, 3.0]))
    assert all(v.shape[0] == 6 for v in out.values())
    assert torch.equal(out["b4.conv1"], repeat_styles(styles, 3)["b4.conv1"])
    assert torch.allclose(out["b8.conv1"][5] - styles["b8.conv1"][1], 3 * d["b8.conv1"], atol=1e-5)
    with pytest.raises(KeyError):
        edit_styles(styles, {"b99.conv0": torch.zeros(3)}, 1.0)


# -- modulated convolution -----------------------------------------------------

@pytest.mark.parametrize("up,demodulate,noise", [(1, True, True), (2, True, True), (1, False, False), (2, True, False)])
def test_fused_equals_nonfused_modconv(up, demodulate, noise):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn([3, 8, 8, 8], generator=gen)
    w = torch.randn([6, 8, 3, 3], generator=gen)
    s = torch.randn([3, 8], generator=gen) + 1
    n = torch.randn([3, 1, 8 * up, 8 * up], generator=gen) if noise else None
    f = ops.setup_filter([1, 3, 3, 1])
    kw = dict(noise=n, up=up, padding=1, resample_filter=f, demodulate=demodulate, flip_weight=(up == 1))
    a = ops.modulated_conv2d(x, w, s, fused_modconv=True, **kw)
    b = ops.modulated_conv2d(x, w, s, fused_modconv=False, **kw)
    assert a.shape == (3, 6, 8 * up, 8 * up)
    assert max_rel(a, b) < 1e-5


def test_demodulation_normalises_output_scale():
    """With demodulation, scaling a sample's styles does not change its output."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn([2, 8, 8, 8], generator=gen)
    w = torch.randn([4, 8, 3, 3], generator=gen)
    s = torch.randn([2, 8], generator=gen)
    a = ops.modulated_conv2d(x, w, s, padding=1, fused_modconv=False)
    b = ops.modulated_conv2d(x, w, s * 7.0, padding=1, fused_modconv=False)
    assert max_rel(a, b) < 1e-5


def test_upsample2d_keeps_constant_images():
    x = torch.full([1, 2, 4, 4], 3.0)
    y = ops.upsample2d(x, ops.setup_filter([1, 3, 3, 1]))
    assert y.shape == (1, 2, 8, 8)
    assert torch.allclose(y[:, :, 2:-2, 2:-2], torch.full_like(y[:, :, 2:-2, 2:-2], 3.0))


# -- mapping and truncation ------------------------------------------------------

def test_truncation(G):
    gen = torch.Generator().manual_seed(3)
    z = torch.randn([4, G.z_dim], generator=gen)
    with torch.no_grad():
        w1 = G.mapping(z)
        assert torch.equal(w1, w1[:, :1].expand_as(w1))  # broadcast to every ws
        w0 = G.mapping(z, psi=0.0)
        assert torch.allclose(w0, G.mapping.w_avg.expand_as(w0))
        wh = G.mapping(z, psi=0.5)
        assert torch.allclose(wh, 0.5 * (w1 + G.mapping.w_avg), atol=1e-6)
        wc = G.mapping(z, psi=0.5, truncation_cutoff=3)
        assert torch.allclose(wc[:, :3], wh[:, :3]) and torch.equal(wc[:, 3:], w1[:, 3:])
        assert torch.equal(G.mapping(z, truncation_psi=0.5), wh)  # official keyword


def test_conditional_mapping_requires_label():
    G = fixture_generator("resnet32_cond_clamp")
    z = torch.randn([2, G.z_dim])
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(z)
    c = torch.eye(4)[:2]
    assert not torch.equal(G.mapping(z, c), G.mapping(z, torch.eye(4)[2:]))


def test_w_avg_tracks_in_training_only():
    G = Generator(8, 0, 8, 8, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8))
    z = torch.randn([16, 8])
    G.eval()
    G.mapping(z)
    assert G.mapping.w_avg.abs().max() == 0
    G.train()
    w = G.mapping(z)[:, 0]
    assert torch.allclose(G.mapping.w_avg, 0.005 * w.mean(0).detach(), atol=1e-6)


# -- noise ------------------------------------------------------------------------

def test_noise_modes(G):
    ws = sample_ws(G, n=1)
    with torch.no_grad():
        const = [G.synthesis(ws, noise_mode="const") for _ in range(2)]
        rand = [G.synthesis(ws, noise_mode="random") for _ in range(2)]
        none = G.synthesis(ws, noise_mode="none")
    assert torch.equal(const[0], const[1])
    assert not torch.equal(rand[0], rand[1])
    assert max_rel(none, const[0]) > 1e-3
    with pytest.raises(ValueError):
        G.synthesis(ws, noise_mode="fixed")


# -- batching and precision -------------------------------------------------------

@pytest.mark.parametrize("fused", [False, True])
def test_batch_independence(G, fused):
    ws = sample_ws(G, n=4)
    with torch.no_grad():
        batch = G.synthesis(ws, fused_modconv=fused)
        alone = torch.cat([G.synthesis(ws[i:i + 1], fused_modconv=fused) for i in range(4)])
    assert max_rel(batch, alone) < 1e-5


def test_cpu_default_form_is_chosen_per_layer_and_gives_the_same_images(G, monkeypatch):
    """On CPU the default picks fused or non-fused per layer (one image: fused); whatever
    the mix, the images are those of either pure form."""
    from iceaudit.stylegan2 import networks

    assert networks.cpu_prefers_fused(1, 16, 4608)  # one image: the official operations
    assert not networks.cpu_prefers_fused(4, 32 * 32, 512 * 9)  # a low-res, wide layer in a batch
    assert networks.cpu_prefers_fused(4, 256 * 256, 128 * 9)  # a high-res, narrow one
    chosen = []
    real = networks.modulated_conv2d
    monkeypatch.setattr(networks, "modulated_conv2d",
                        lambda *a, **k: chosen.append(k["fused_modconv"]) or real(*a, **k))
    ws = sample_ws(G, n=3)
    with torch.no_grad():
        mixed = G.synthesis(ws)
        assert set(chosen) == {False, True}  # this generator mixes both forms at batch 3
        pure = G.synthesis(ws, fused_modconv=False)
    assert max_rel(mixed, pure) < 1e-5


def test_bf16_autocast_close_to_fp32(G):
    ws = sample_ws(G, n=2)
    with torch.no_grad():
        ref = G.synthesis(ws)
        G.precision = "bf16"
        try:
            low = G.synthesis(ws)
        finally:
            G.precision = "fp32"
    assert low.dtype == torch.float32
    assert max_rel(low, ref) < 0.1
    with pytest.raises(ValueError):
        G.precision = "fp8"


# -- fingerprint ----------------------------------------------------------------

def test_fingerprint_stable_under_save_load(G, tmp_path):
    fp = G.fingerprint()
    assert len(fp) == 64 and fp == G.fingerprint()
    path = tmp_path / "g.safetensors"
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(path))
    G2 = Generator(**G.init_kwargs)
    assert G2.fingerprint() != fp  # fresh random weights
    G2.load_state_dict(load_file(str(path)))
    assert G2.fingerprint() == fp
    G2.double()  # storage dtype does not matter
    assert G2.fingerprint() == fp


def test_fingerprint_sees_every_weight_and_the_clamp(G):
    fp = G.fingerprint()
    G2 = Generator(**G.init_kwargs)
    G2.load_state_dict(G.state_dict())
    with torch.no_grad():
        G2.synthesis.b32.conv1.noise_const[0, 0] += 1e-3
    assert G2.fingerprint() != fp
    G2.load_state_dict(G.state_dict())
    with torch.no_grad():
        G2.mapping.w_avg[0] += 1e-3
    assert G2.fingerprint() != fp
    kwargs = json.loads(json.dumps(G.init_kwargs))
    kwargs["synthesis_kwargs"]["conv_clamp"] = 256
    G3 = Generator(**kwargs)
    G3.load_state_dict(G.state_dict())
    assert G3.fingerprint() != fp


def test_gradients_flow_to_edited_styles_through_suffix(G):
    ws = sample_ws(G, n=2)
    styles = {k: v.detach().requires_grad_(True) for k, v in G.styles(ws).items()}
    state = G.synthesis_prefix(styles, "b16.conv0")
    G.synthesis_suffix(state, styles).square().mean().backward()
    assert styles["b16.conv0"].grad.abs().sum() > 0 and styles["b32.torgb"].grad.abs().sum() > 0
    assert styles["b8.conv1"].grad is not None  # prefix keeps its graph too


def test_module_forward_uses_official_signature(G):
    """Blocks and layers keep the official call signatures (ws per block, w per layer)."""
    ws = sample_ws(G, n=2)
    with torch.no_grad():
        x, img = G.synthesis.b4(None, None, ws[:, 0:2])
        x, img = G.synthesis.b8(x, img, ws[:, 1:4])
        styles = G.styles(ws)
        state = G.synthesis_prefix(styles, "b16.conv0")
    assert torch.allclose(x, state.x, atol=1e-6) and torch.allclose(img, state.img, atol=1e-6)


def test_official_synthesis_keywords_accepted_typos_refused(G):
    ws = sample_ws(G, n=1)
    with torch.no_grad():
        assert torch.equal(G.synthesis(ws, noise_mode="const", force_fp32=True), G.synthesis(ws))
        with pytest.raises(TypeError):
            G.synthesis(ws, noise_mod="none")
