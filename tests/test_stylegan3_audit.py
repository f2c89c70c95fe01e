"""A StyleGAN3 network pickle through the whole line: the FFHQ recipe builds a bank on it (with
random-weight FAN and BiSeNet, as for StyleGAN2), and `iceaudit audit` walks W, W+ and S
subspaces of it (S: the affines of its Fourier input and of its layers) and names the driver
of a classifier whose dependence is known, then `iceaudit report` renders the result.

The generator is the r32 parity case (config-R weights the official code produced, see
tests/test_stylegan3_parity.py), written as an official network pickle."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent / "audit"))
from audit_synth import MeanRed, base_scores, save_script, synthetic_bank  # noqa: E402
from cli_helpers import run_cli  # noqa: E402
from stylegan2_io_fakes import EasyDict, generator_tree, write_pickle  # noqa: E402

from iceaudit.bank.format import Bank, save_bank  # noqa: E402
from iceaudit.stylegan2.loaders import load_generator  # noqa: E402

DATA = Path(__file__).parent / "data" / "parity_sg3"


@pytest.fixture(scope="module")
def sg3(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sg3")
    kwargs = json.loads((DATA / "r32.json").read_text())
    kwargs = EasyDict(kwargs, mapping_kwargs=EasyDict(kwargs["mapping_kwargs"]))
    state = load_file(str(DATA / "r32.weights.safetensors"))
    path = write_pickle({"G_ema": generator_tree(state, kwargs)}, tmp / "sg3.pkl")
    return tmp, path, load_generator(path)


@pytest.fixture(scope="module")
def built(sg3):
    from iceaudit.bank.build import build_bank
    from iceaudit.bank.recipe import load_recipe
    from iceaudit.criteria.base import Eyes
    from iceaudit.criteria.bisenet import BiSeNetParser
    from iceaudit.criteria.fan import FanLandmarks

    tmp, _, G = sg3
    recipe = load_recipe("ffhq")
    # no valid ranges: on random weights no walk stays "a face", and this test is about the StyleGAN3 line
    recipe.bank.update(faces=1, calibration_faces=4, validation_faces=4, manifold_fit_faces=0)
    eyes = Eyes(FanLandmarks.random(num_modules=1, size=64), BiSeNetParser.random(size=32))
    return recipe, build_bank(G, recipe, eyes, out=tmp / "ffhq-bank", keep_failing=True)


def test_the_ffhq_recipe_builds_a_stylespace_bank_on_a_stylegan3(sg3, built):
    _, _, G = sg3
    recipe, result = built
    bank = result.bank
    assert bank.generator_fingerprint == G.fingerprint() and bank.subspaces
    assert {s.id for s in bank.subspaces} | set(result.skipped) == {s.id for s in recipe.subspaces}
    assert all(result.skipped.values())  # each skipped entry says why
    style_dim = sum(sl.channels for sl in G.style_layers)
    assert G.style_layers[0].name == "input" and G.style_layers[0].channels == 4
    for s in bank.subspaces:
        assert s.space == "S" and s.basis.shape[1] == style_dim
        assert torch.allclose(s.basis @ s.basis.T, torch.eye(s.basis.shape[0]), atol=1e-4)
        assert np.isfinite(s.unit_norm) and s.unit_norm > 0


def test_an_audit_of_a_stylegan3_names_the_driver_and_reports(sg3, built, capsys):
    tmp, path, G = sg3
    layer = G.style_layers[3].name
    synthetic = synthetic_bank(G, s_layers=(layer,))
    save_bank(Bank("sg3", G.fingerprint(), synthetic.subspaces + built[1].bank.subspaces), tmp / "bank")
    save_script(MeanRed(), tmp / "red.pt")
    thr = float(np.median(base_scores(G, MeanRed(), 10)))
    (tmp / "red.toml").write_text(f'name = "redness"\nhead = "logit"\nthreshold = {thr!r}\n')

    code, _, err = run_cli(capsys, "audit", "--classifier", str(tmp / "red.pt"), "--card", str(tmp / "red.toml"),
                           "--generator", str(path), "--bank", str(tmp / "bank"), "--n", "10", "--steps", "5",
                           "--null", "3", "--baselines", "saliency,latent,attfind", "--trust-classifier",
                           "--out", str(tmp / "audit"))
    assert code == 0, err
    summary = json.loads((tmp / "audit" / "summary.json").read_text())
    drivers = {d["subspace"]: d for d in summary["drivers"]}
    assert set(drivers) >= {"redness", "w_random", "wplus_random", "s_random"}
    assert summary["drivers"][0]["subspace"] == "redness" and drivers["redness"]["significant"]
    assert drivers["redness"]["slope"] > 0
    assert summary["generator"]["fingerprint"] == G.fingerprint()
    assert summary["baselines"]["latent"]["status"] == "ok"

    code, _, err = run_cli(capsys, "report", str(tmp / "audit"), "--format", "html")
    assert code == 0, err
    html = (tmp / "audit" / "report.html").read_text()
    assert "redness" in html
