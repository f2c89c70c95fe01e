"""The FaceLab oracle, the planted-classifier plumbing and the facelab CLI's bad-input paths."""
from __future__ import annotations

import torch
import pytest
from typer.testing import CliRunner

from iceaudit.cli import app
from iceaudit.errors import UserError
from iceaudit.facelab import factors as fl
from iceaudit.audit.classifier import load_card, load_classifier
from iceaudit.facelab.classifiers import CARDS, SmallCNN, export, preprocess, scorer, training_factors
from iceaudit.facelab.oracle import markdown, oracle, oracle_many


def test_oracle_finds_what_a_transparent_score_depends_on():
    # score = mean brightness of a box around the mouth: mouth_open and skin tone move it,
    # the background does not
    def mouth_box(images):
        return images[:, :, 38:52, 24:40].mean(dim=(1, 2, 3))

    rows = {r.factor: r for r in oracle(mouth_box, factors=["mouth_open", "bg_brightness", "skin_tone"],
                                        n=16, step=0.5, seed=1)}
    assert rows["mouth_open"].significant() and rows["mouth_open"].mean_abs_delta > 0.01
    assert rows["skin_tone"].mean_delta > 0  # lighter skin and lips
    assert rows["bg_brightness"].mean_abs_delta == 0.0  # no background pixel in the box
    assert not rows["bg_brightness"].significant()
    table = markdown(list(rows.values())).splitlines()
    assert len(table) == 5 and table[-1].startswith("| `bg_brightness`")  # weakest last


def test_oracle_deltas_are_higher_minus_lower_and_step_is_a_share_of_range():
    def corner_probe(images):  # a score that reads one background pixel
        return images[:, :, 1, 1].mean(1)

    r = oracle_many({"a": corner_probe}, ["bg_brightness"], n=8, step=0.5, seed=0)["a"][0]
    assert r.step == pytest.approx(0.5) and r.mean_delta > 0 and r.ci_low > 0


def test_oracle_rejects_bad_input():
    f = lambda x: x.mean(dim=(1, 2, 3))  # noqa: E731
    with pytest.raises(UserError, match="unknown FaceLab factor"):
        oracle(f, factors=["smiles"], n=4)
    with pytest.raises(UserError, match="seed must be an integer"):
        oracle(f, factors=["smile"], n=4, seed=0.5)
    with pytest.raises(UserError, match="step"):
        oracle(f, factors=["smile"], n=4, step=2.0)
    with pytest.raises(UserError, match="step"):  # faces mid-range could move neither way
        oracle(f, factors=["skin_tone"], n=16, step=0.75)


def test_planted_training_sets_carry_the_planted_confound():
    i = fl.FACTOR_INDEX
    f, y = training_factors("smiling_skin_shortcut", 2000, 0)
    assert ((f[:, i["smile"]] > 0).float() == y).all()
    light = (f[:, i["skin_tone"]] > 0.5).float()
    assert 0.85 < float((light == y).float().mean()) < 0.95
    f, y = training_factors("eyeglasses_background_shortcut", 2000, 0)
    bright = (f[:, i["bg_brightness"]] > 0.5).float()
    assert 0.85 < float((bright == y).float().mean()) < 0.95
    f, y = training_factors("smiling", 2000, 0)
    light = (f[:, i["skin_tone"]] > 0.5).float()
    assert abs(float((light == y).float().mean()) - 0.5) < 0.05


@pytest.mark.parametrize("name", sorted(CARDS))
def test_training_preprocess_is_the_audit_adapters(name, tmp_path):
    """Planted classifiers are trained on exactly what the audit feeds them."""
    model = SmallCNN(outputs=2 if CARDS[name]["head"] == "softmax" else 1, width=4).eval()
    path = export(name, model, tmp_path, {"command": "test"})
    clf = load_classifier(path, load_card(path.with_suffix(".toml")))
    img = torch.rand(3, 3, 64, 64) * 2 - 1
    assert torch.allclose(clf.preprocess(img), preprocess(img, CARDS[name]), atol=1e-5)
    assert torch.allclose(clf.decision_score(img), scorer(model, CARDS[name])(img), atol=1e-5)
    assert clf.card.positive_class == CARDS[name]["positive_class"]


def test_cards_differ_from_generator_output_format():
    sizes = {CARDS[n]["input_size"] for n in CARDS}
    assert {64, 80, 96} <= sizes
    assert CARDS["eyeglasses_background_shortcut"]["channel_order"] == "BGR"
    assert CARDS["smiling_skin_shortcut"]["crop_box"] is not None


runner = CliRunner()


@pytest.mark.parametrize("args,needle", [
    (["facelab", "render", "--factor", "smiles=0.5", "--n", "1"], "unknown FaceLab factor 'smiles'"),
    (["facelab", "render", "--factor", "smile=3", "--n", "1"], "outside its range"),
    (["facelab", "render", "--factor", "smile", "--n", "1"], "NAME=VALUE"),
    (["facelab", "render", "--seed", "1.5", "--n", "1"], "not a valid integer"),
    (["facelab", "oracle", "smiling", "--factor", "nope", "--n", "2"], "unknown FaceLab factor"),
    (["facelab", "oracle", "no_such_classifier", "--n", "2"], "no classifier card"),
    (["facelab", "train-classifiers", "nope"], "unknown planted classifier"),
])
def test_cli_bad_input_exits_2_with_one_message(args, needle, tmp_path, monkeypatch):
    from iceaudit.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


def test_cli_bad_input_message_names_the_problem(capsys, tmp_path, monkeypatch):
    from iceaudit.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["facelab", "render", "--factor", "glases=1", "--n", "1"])
    err = capsys.readouterr().err
    assert "unknown FaceLab factor 'glases'" in err and "Traceback" not in err
    assert "glasses" in err  # the hint lists the known factors


def test_cli_render_writes_a_sheet(tmp_path):
    out = tmp_path / "s.png"
    res = runner.invoke(app, ["facelab", "render", "--n", "2", "--resolution", "64", "--out", str(out),
                              "--factor", "smile=0.9"])
    assert res.exit_code == 0, res.output
    assert out.exists() and out.stat().st_size > 1000


def test_accuracy_on_generator_uses_phi_as_truth():
    from iceaudit.facelab.classifiers import accuracy_on_generator, label_on_prior
    from iceaudit.facelab.latent import phi, render_z, sample_z

    class Exact(torch.nn.Module):  # the ideal demo generator: G(z) = render(phi(z))
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, z, c=None, noise_mode="const"):
            return render_z(z, 64).images

    torch.manual_seed(0)
    score = scorer(SmallCNN(width=4).eval(), CARDS["smiling"])
    got = accuracy_on_generator(score, "smiling", Exact(), n=8, seed=3, batch=4)
    z = sample_z(8, 3)
    want = ((score(render_z(z, 64).images) > 0).float() == label_on_prior("smiling", phi(z))).float().mean()
    assert got["accuracy"] == pytest.approx(float(want), abs=1e-4) and got["n"] == 8
