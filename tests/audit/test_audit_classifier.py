"""Classifier adapter: model cards, preprocessing, heads, loaders, and bad input via the CLI."""
from __future__ import annotations

import math

import pytest
import torch

from audit_synth import MeanRed, save_script
from iceaudit.audit.classifier import ModelCard, load_card, load_classifier
from iceaudit.cli import main
from iceaudit.errors import UserError


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


class Logits(torch.nn.Module):
    """Three outputs: [mean R, mean G, mean B] of the input."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def build_logits() -> torch.nn.Module:  # a factory for the state-dict loader
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))


def test_card_toml_yaml_and_flags(tmp_path):
    (tmp_path / "c.toml").write_text('head = "softmax"\nindex = 1\ninput_size = [32, 24]\nmean = 0.5\n')
    card = load_card(tmp_path / "c.toml", threshold=0.7)
    assert card.head == "softmax" and card.index == 1 and card.input_size == (32, 24)
    assert card.mean == (0.5, 0.5, 0.5) and card.threshold == 0.7
    (tmp_path / "c.yaml").write_text("head: sigmoid\nvalue_range: [-1, 1]\nchannel_order: bgr\n")
    card = load_card(tmp_path / "c.yaml")
    assert card.value_range == (-1.0, 1.0) and card.channel_order == "BGR" and card.threshold == 0.5
    assert load_card(value_range="0,255").value_range == (0.0, 255.0)
    assert load_card().threshold == 0.0  # logit default
    with pytest.raises(UserError, match="unknown key"):
        load_card(tmp_path / "c.toml", treshold=0.5)
    with pytest.raises(UserError, match="value_range"):
        load_card(value_range=[0, 2])
    with pytest.raises(UserError, match="threshold"):
        load_card(head="sigmoid", threshold=2.0)


@pytest.mark.parametrize("key, value, words", [
    ("threshold", "x", "threshold must be a finite number"),
    ("threshold", float("nan"), "threshold must be a finite number"),
    ("index", "x", "index must be a whole number >= 0"),
    ("index", 1.5, "index must be a whole number >= 0"),
    ("input_size", 100000, "input_size must be N or [H, W] with whole sizes from 8 to 4096"),
    ("input_size", 3, "input_size must be N or [H, W] with whole sizes from 8 to 4096"),
    ("input_size", [64, "x"], "input_size must be N or [H, W]"),
    ("name", 7, "name must be a string"),
    ("mean", [0.5, float("inf"), 0.5], "mean must be one number or three"),
])
def test_card_fields_of_the_wrong_type_or_size_are_refused_by_name(tmp_path, key, value, words):
    with pytest.raises(UserError) as err:
        load_card(None, **{key: value})
    assert words in err.value.message


def test_a_card_that_is_not_text_is_one_message(tmp_path, capsys):
    from cli_helpers import run_cli

    card = tmp_path / "card.toml"
    card.write_bytes(bytes(range(256)) * 4)
    code, _, err = run_cli(capsys, "audit", "--classifier", str(tmp_path / "m.pt"), "--card", str(card),
                           "--out", str(tmp_path / "out"))
    assert code == 2 and "not a text file" in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_preprocess_geometry_range_order(tmp_path):
    path = save_script(Identity(), tmp_path / "id.pt")
    img = torch.full((1, 3, 10, 10), -1.0)
    img[:, 0] = 1.0  # red = +1 (255), green = blue = -1 (0)
    img[:, :, 0, :] = 0.3  # a top row that the crop must remove
    clf = load_classifier(path, ModelCard(crop="celeba", input_size=8, value_range=(0, 255), channel_order="BGR",
                                          mean=(10, 20, 30), std=(2, 2, 2)))
    x = clf.preprocess(img)
    assert x.shape == (1, 3, 8, 8)  # central 80 %: rows/cols 1..8 of 10, no resize needed
    assert torch.allclose(x[0, 2], torch.full((8, 8), (255 - 30) / 2))  # red is last in BGR; mean in model order
    assert torch.allclose(x[0, 0], torch.full((8, 8), (0 - 10) / 2))
    assert load_classifier(path, ModelCard(crop="celeba")).preprocess(img).shape == (1, 3, 10, 10)  # back to R
    clf = load_classifier(path, ModelCard(input_size=8))
    assert clf.preprocess(torch.rand(2, 3, 20, 20) * 2 - 1).shape == (2, 3, 8, 8)
    img16 = torch.full((1, 3, 16, 16), -1.0)
    img16[:, :, 0, :] = 0.3
    clf = load_classifier(path, ModelCard(crop_box=(0.0, 0.5, 0.5, 0.5), input_size=8))
    x = clf.preprocess(img16)  # top-right quarter: its first row is the 0.3 row
    assert x.shape == (1, 3, 8, 8) and torch.allclose(x[0, :, 0], torch.full((3, 8), 0.65))


def test_heads(tmp_path):
    path = save_script(Logits(), tmp_path / "logits.pt")
    img = torch.zeros(1, 3, 8, 8)
    img[:, 0], img[:, 1], img[:, 2] = 1.0, 0.0, -1.0  # in [0, 1]: means 1, .5, 0
    logit = load_classifier(path, ModelCard(head="logit", index=1)).decision_score(img)
    assert torch.allclose(logit, torch.tensor([0.5]))
    sig = load_classifier(path, ModelCard(head="sigmoid", index=0)).decision_score(img)
    assert torch.allclose(sig, torch.sigmoid(torch.tensor([1.0])))
    soft = load_classifier(path, ModelCard(head="softmax", index=2)).decision_score(img)
    expect = math.exp(0) / (math.exp(1) + math.exp(0.5) + math.exp(0))
    assert torch.allclose(soft, torch.tensor([expect]))


def test_score_is_differentiable(tmp_path):
    clf = load_classifier(save_script(MeanRed(), tmp_path / "r.pt"), ModelCard())
    img = torch.zeros(2, 3, 8, 8, requires_grad=True)
    clf.decision_score(img).sum().backward()
    assert img.grad[:, 0].abs().sum() > 0 and img.grad[:, 1:].abs().sum() == 0


def test_factory_state_dict(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = build_logits()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    monkeypatch.syspath_prepend(str(tmp_path.parent))
    card = ModelCard(factory="test_audit_classifier:build_logits", head="softmax", index=1)
    clf = load_classifier(tmp_path / "w.pt", card)
    img = torch.rand(3, 3, 8, 8) * 2 - 1
    expect = torch.softmax(net((img + 1) / 2), dim=1)[:, 1]
    assert torch.allclose(clf.decision_score(img), expect, atol=1e-6)
    torch.save({"other": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="do not fit"):
        load_classifier(tmp_path / "bad.pt", card)
    torch.save({"model": net}, tmp_path / "pickled.pt")  # a whole pickled module: refused, never unpickled
    with pytest.raises(UserError, match="not a readable state dict"):
        load_classifier(tmp_path / "pickled.pt", card)


def test_onnx_classifier(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = build_logits().eval()
    try:
        torch.onnx.export(net, (torch.zeros(1, 3, 8, 8),), str(tmp_path / "m.onnx"), input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, dynamo=False)
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"torch.onnx.export unavailable here: {err}")
    clf = load_classifier(tmp_path / "m.onnx", ModelCard(head="logit", index=0))
    assert not clf.differentiable and clf.kind == "onnx"
    img = torch.rand(4, 3, 8, 8) * 2 - 1
    assert torch.allclose(clf.decision_score(img), net((img + 1) / 2)[:, 0], atol=1e-5)


class WantsSize(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.linear(x.flatten(1), torch.ones(1, 3 * 32 * 32))


class NaNs(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(1, 2, 3)) * float("nan")


class ThreeD(torch.nn.Module):
    def forward(self, x):
        return x[:, :, :2, :2]


def _cli(world, tmp_path, *extra, classifier=None):
    args = ["audit", "--classifier", str(classifier or world["classifier"]), "--generator", str(world["generator"]),
            "--bank", str(world["bank"]), "--n", "4", "--steps", "3", "--null", "2", "--out", str(tmp_path / "out"),
            *extra]
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


@pytest.mark.parametrize("case, message", [
    ("missing", "classifier not found"),
    ("not_a_model", "is not a TorchScript model"),
    ("wrong_size", "failed on input of shape (2, 3, 16, 16)"),
    ("bad_head", "has 1 output(s) but the card asks for softmax index 1"),
    ("bad_shape", "output has shape (2, 3, 2, 2)"),
    ("nan", "non-finite (NaN/inf) score"),
])
def test_bad_classifier_exits_2(world, tmp_path, capsys, case, message):
    extra = []
    if case == "missing":
        path = tmp_path / "nope.pt"
    elif case == "not_a_model":
        path = tmp_path / "junk.pt"
        path.write_bytes(b"definitely not a model")
    elif case == "wrong_size":
        path = save_script(WantsSize(), tmp_path / "m.pt")
    elif case == "bad_head":
        path, extra = world["classifier"], ["--head", "softmax", "--index", "1"]
    elif case == "bad_shape":
        path = save_script(ThreeD(), tmp_path / "m.pt")
    else:
        path = save_script(NaNs(), tmp_path / "m.pt")
    assert _cli(world, tmp_path, *extra, classifier=path) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_bad_card_and_device_exit_2(world, tmp_path, capsys):
    assert _cli(world, tmp_path, "--crop", "square") == 2
    assert "crop must be one of" in capsys.readouterr().err
    assert _cli(world, tmp_path, "--card", str(tmp_path / "none.toml")) == 2
    assert "model card not found" in capsys.readouterr().err
