"""Reduced precision (``--precision bf16|fp16``) against float32 on the same weights.

Bounds are the measured errors with room (docs/precision.md: `benchmarks/bench_precision.py`).
fp16 keeps 11 significant bits and meets 1e-2 of the largest pixel; bf16 keeps 8, and a trained
generator amplifies one rounding of any layer's input to a few per cent at its worst pixel
(its RMS error stays at 0.4–0.5 %): the bf16 bounds say so rather than hide it."""
from __future__ import annotations

import pytest
import torch

from cli_helpers import run_cli
from iceaudit.audit.classifier import load_card, load_classifier
from iceaudit.facelab.asset_files import ASSETS
from iceaudit.resources import demo_classifier
from iceaudit.stylegan2.loaders import load_generator
from iceaudit.stylegan2.networks import Generator


def _errors(G, ws, precision):
    """(max |Δ|, RMS Δ) of the images, relative to the largest float32 pixel."""
    with torch.no_grad():
        ref = G.synthesis(ws)
        G.precision = precision
        try:
            low = G.synthesis(ws)
        finally:
            G.precision = "fp32"
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    scale = ref.abs().max()
    d = (low - ref).abs()
    return float(d.max() / scale), float(d.pow(2).mean().sqrt() / scale)


@pytest.fixture(scope="module")
def demo():
    G = load_generator(str(ASSETS / "demo_generator.safetensors"))
    torch.manual_seed(1)
    with torch.no_grad():
        return G, G.mapping(torch.randn(24, G.z_dim), None)


@pytest.fixture(scope="module")
def clamped():
    """A random config-f-like generator: 64 px, conv_clamp 256, two fp16 resolutions in its file."""
    torch.manual_seed(0)
    G = Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=64, img_channels=3, mapping_kwargs={"num_layers": 2},
                  synthesis_kwargs={"channel_base": 2048, "channel_max": 64, "conv_clamp": 256, "num_fp16_res": 2}).eval()
    with torch.no_grad():
        return G, G.mapping(torch.randn(4, 64), None)


def test_fp16_images_are_within_1e2_of_the_largest_pixel(demo, clamped):
    for G, ws in (demo, clamped):
        worst, rms = _errors(G, ws, "fp16")
        assert worst <= 1.5e-2 and rms <= 2e-3, (worst, rms)
    assert _errors(*clamped, "fp16")[0] <= 1e-2


def test_bf16_images_keep_their_rms_within_1e2(demo, clamped):
    for G, ws in (demo, clamped):
        worst, rms = _errors(G, ws, "bf16")
        assert rms <= 1e-2 and worst <= 0.12, (worst, rms)
        assert worst > 1e-3  # bf16 really ran (not a silent float32 fallback)


def test_only_the_top_resolutions_run_reduced(clamped):
    G, ws = clamped
    assert G.synthesis.reduced_resolution == 32  # num_fp16_res = 2 at 64 px: b32 and b64, as the official code
    first_reduced = next(sl.name for sl in G.style_layers if sl.resolution >= 32)
    with torch.no_grad():
        styles = G.styles(ws)
        ref = G.synthesis_prefix(styles, first_reduced)
        G.precision = "bf16"
        try:
            low = G.synthesis_prefix(styles, first_reduced)
        finally:
            G.precision = "fp32"
    assert torch.equal(ref.x, low.x) and torch.equal(ref.img, low.img)  # b4..b16 in float32, bit for bit
    # a file that names no fp16 blocks gets the official default: the top four resolutions
    plain = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=256, img_channels=3,
                      synthesis_kwargs={"channel_base": 256, "channel_max": 8})
    assert plain.synthesis.reduced_resolution == 32
    with pytest.raises(ValueError, match="precision must be one of"):
        plain.precision = "fp8"


@pytest.mark.parametrize("precision, bound", [("fp16", 1e-2), ("bf16", 6e-2)])
def test_decision_scores_of_the_shipped_classifiers(demo, precision, bound, monkeypatch):
    """Generator and classifier both reduced; |Δ score| relative to the scores' spread."""
    monkeypatch.setenv("ICEAUDIT_TRUST_CLASSIFIER", "1")
    G, ws = demo
    for name in ("smiling", "smiling_skin_shortcut", "eyeglasses_background_shortcut"):
        weights, card = demo_classifier(name)
        clf = load_classifier(weights, load_card(card))
        with torch.no_grad():
            ref = clf.decision_score(G.synthesis(ws))
            G.precision = clf.precision = precision
            try:
                low = clf.decision_score(G.synthesis(ws))
            finally:
                G.precision = clf.precision = "fp32"
        assert low.dtype == torch.float32
        spread = float(ref.max() - ref.min())
        assert float((low - ref).abs().max()) <= bound * spread, (name, float((low - ref).abs().max()), spread)


def test_a_bf16_audit_finds_what_the_fp32_audit_finds(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "audit"))
    from audit_synth import redness_classifier, synthetic_bank, tiny_generator
    from iceaudit.audit import AuditSettings, run_audit
    from iceaudit.errors import UserError

    G = tiny_generator()
    bank = synthetic_bank(G)
    clf = redness_classifier(G, tmp_path, 16)
    base = dict(n=16, n_steps=5, n_null=3, n_bootstrap=300, progress=False, strip_faces=2, n_counterfactual_images=2)
    full = run_audit(clf, G, bank, AuditSettings.of(**base))
    low = run_audit(clf, G, bank, AuditSettings.of(precision="bf16", out=tmp_path / "bf16", **base))
    assert G.precision == "fp32" and clf.precision == "fp32"  # the caller's networks as they were
    assert low.record.settings.precision == "bf16" and full.record.settings.precision == "fp32"
    assert [d.subspace for d in low.drivers][:1] == [d.subspace for d in full.drivers][:1] == ["redness"]
    assert [d.significant for d in low.drivers] == [d.significant for d in full.drivers]
    assert abs(low.drivers[0].slope - full.drivers[0].slope) <= 0.05 * abs(full.drivers[0].slope)
    assert not (low.results["score"].to_numpy() == full.results["score"].to_numpy()).all()
    with pytest.raises(UserError, match="precision"):  # resuming it in another precision would mix two runs
        run_audit(clf, G, bank, AuditSettings.of(precision="fp32", out=tmp_path / "bf16", resume=True, **base))


def test_a_bad_precision_is_one_message(capsys, tmp_path):
    code, _, err = run_cli(capsys, "audit", "--classifier", "x.onnx", "--out", str(tmp_path / "a"), "--precision", "fp8")
    assert code == 2 and "--precision must be one of fp32, bf16, fp16" in err and "Traceback" not in err
