"""FaceLab's factor reader (validation truth) and attribute estimators as criteria."""
import math

import pytest
import torch

from iceaudit.facelab.factors import FACTOR_NAMES, sample_factors
from iceaudit.facelab.reader import FactorReader, FactorTruth, decode, encode, load_reader, wrap_difference


def test_encode_decode_round_trip_and_hue_wraps():
    f = sample_factors(16, 0)
    back = decode(encode(f))
    for i, name in enumerate(FACTOR_NAMES):
        assert torch.allclose(back[name], f[:, i], atol=1e-5), name
    sub = decode(encode(f, ("age",)), ("age",))
    assert list(sub) == ["age"] and torch.allclose(sub["age"], f[:, FACTOR_NAMES.index("age")], atol=1e-6)
    # across red: 0.95 -> 0.05 is a step of +0.1 turns, not -0.9
    assert math.isclose(float(wrap_difference("bg_hue", torch.tensor(0.05 - 0.95))), 0.1, abs_tol=1e-6)
    assert float(wrap_difference("age", torch.tensor(-0.9))) == pytest.approx(-0.9)


def test_shipped_reader_reads_held_out_renders():
    from iceaudit.facelab.analysis import NET_RES
    from iceaudit.facelab.reader import factor_errors
    from iceaudit.facelab.render import render

    f = sample_factors(96, 123)  # evaluation seeds are never trained on
    errs = factor_errors(load_reader().read(render(f, NET_RES).images), f)
    for name in ("skin_tone", "smile", "mouth_open", "hair_colour", "hair_length", "glasses", "beard",
                 "bg_brightness", "face_width", "age"):
        assert errs[name]["r2"] > 0.8, (name, errs[name])


def test_untrained_reader_does_not_pass_for_a_reader():
    from iceaudit.facelab.analysis import NET_RES
    from iceaudit.facelab.reader import factor_errors
    from iceaudit.facelab.render import render

    torch.manual_seed(0)
    f = sample_factors(64, 123)
    errs = factor_errors(FactorReader().eval().read(render(f, NET_RES).images), f)
    assert max(e["r2"] for e in errs.values()) < 0.5


def test_estimator_criterion_is_differentiable_and_tracks_age():
    from iceaudit.criteria.base import Eyes
    from iceaudit.criteria.spec import Measured
    from iceaudit.facelab.render import render

    m = Measured({"kind": "estimator", "model": "facelab-age"}, Eyes())
    young = render(sample_factors(8, 5, age=0.05), 64).images
    old = render(sample_factors(8, 5, age=0.95), 64).images
    assert float(m(old).mean()) > float(m(young).mean()) + 0.4
    x = young.clone().requires_grad_(True)
    act, sup = m.criterion(x)
    assert act.shape == (8, 1) and sup.shape == (8, 0)
    (g,) = torch.autograd.grad(act.sum(), x)
    assert float(g.abs().sum()) > 0


def test_estimator_from_a_torchscript_file_and_bad_files(tmp_path):
    from iceaudit.criteria.base import Eyes
    from iceaudit.criteria.spec import Measured
    from iceaudit.errors import UserError

    class Bright(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(1, 2, 3))

    class Two(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :2]

    torch.jit.script(Bright()).save(str(tmp_path / "bright.pt"))
    torch.jit.script(Two()).save(str(tmp_path / "two.pt"))
    m = Measured({"kind": "estimator", "model": str(tmp_path / "bright.pt")}, Eyes())
    x = torch.rand(3, 3, 8, 8)
    assert torch.allclose(m(x), x.mean(dim=(1, 2, 3)))
    with pytest.raises(UserError, match="exactly one"):
        Measured({"kind": "estimator", "model": str(tmp_path / "two.pt")}, Eyes())(x)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a TorchScript"):
        Measured({"kind": "estimator", "model": str(tmp_path / "junk.pt")}, Eyes())
    with pytest.raises(UserError, match="not found"):
        Measured({"kind": "estimator", "model": str(tmp_path / "missing.pt")}, Eyes())
    with pytest.raises(UserError, match="needs `model`"):
        Measured({"kind": "estimator"}, Eyes())


def test_validation_truth_names_the_factor_a_walk_moves_and_rejects_a_wrong_intent():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from bank_helpers import HalfParser, PatternGenerator

    from iceaudit.bank.build import bank_latents
    from iceaudit.bank.format import Subspace
    from iceaudit.bank.validate import confusion_matrix, validate_subspace
    from iceaudit.criteria.base import Eyes
    from iceaudit.criteria.spec import Measured

    G = PatternGenerator()
    eyes = Eyes(parser=HalfParser())
    measures = {"left": Measured({"kind": "region_colour", "regions": ["skin"], "size": 16}, eyes)}
    basis = torch.zeros(1, 8)
    basis[0, 0] = 1  # conv channel 0 paints the left half only
    sub = Subspace("left", "left", "left", [], "S", ["b4.conv1", "b4.torgb"], basis, "", 1.0, (-2, 2), "ice", "")
    ws = bank_latents(G, 12, seed=1)

    class Truth:
        def __call__(self, images):
            return {"left_light": images[..., :8].mean(dim=(1, 2, 3)), "right_light": images[..., 8:].mean(dim=(1, 2, 3))}

    ok = validate_subspace(G, sub, "left", measures, ws, truth=Truth(), truth_factor="left_light")
    assert ok["truth_lead"] == "left_light" and abs(ok["truth"]["right_light"]) < 1e-6
    bad = validate_subspace(G, sub, "left", measures, ws, truth=Truth(), truth_factor="right_light")
    assert not bad["passed"] and any("left_light" in r for r in bad["reasons"])
    rows, cols, m = confusion_matrix({"left": ok})
    assert rows == ["left"] and cols == ["left_light", "right_light"] and m[0][0] > m[0][1]
    assert FactorTruth.difference("bg_hue", torch.tensor(0.9)) == pytest.approx(-0.1)
