"""Classifier files are code: TorchScript runs only with --trust-classifier, factories come
only from installed packages or a file the user names, and only nn.Module builders run
(issue 19). Each hostile file below aims at a file outside the audit directory."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from cli_helpers import run_cli
from iceaudit.audit.classifier import ModelCard, load_card, load_classifier
from iceaudit.audit.trust import returns_module
from iceaudit.errors import UserError


@pytest.fixture(autouse=True)
def untrusted(monkeypatch):
    monkeypatch.delenv("ICEAUDIT_TRUST_CLASSIFIER", raising=False)  # the suite trusts its own files; these tests do not


class WritesOnForward(torch.nn.Module):
    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, x):
        t = torch.from_file(self.target, shared=True, size=16, dtype=torch.uint8)
        t.fill_(65)
        return x[:, 0].mean(dim=(1, 2))[:, None] + t[0].float() * 0  # keeps the write alive in the graph


class WritesOnLoad(torch.nn.Module):
    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, x):
        return x[:, 0].mean(dim=(1, 2))[:, None]

    @torch.jit.export
    def __getstate__(self):
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]):
        t = torch.from_file(state[0], shared=True, size=16, dtype=torch.uint8)
        t.fill_(66)
        self.target = state[0] + str(int(t[0]))
        self.training = state[1]


@pytest.fixture
def hostile(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    files = {}
    for name, cls in (("forward", WritesOnForward), ("load", WritesOnLoad)):
        files[name] = tmp_path / f"{name}.pt"
        torch.jit.save(torch.jit.script(cls(str(victim / f"pwned_{name}"))), str(files[name]))
    assert not any(victim.iterdir())  # saving ran nothing
    return files, victim


def _audit(capsys, world, out, *args):
    return run_cli(capsys, "audit", "--card", str(world["card"]), "--generator", str(world["generator"]),
                   "--bank", str(world["bank"]), "--out", str(out), "--baselines", "none", "--n", "4", *args)


@pytest.mark.parametrize("which", ["forward", "load"])
def test_hostile_torchscript_is_refused_and_writes_nothing(world, hostile, tmp_path, capsys, which):
    files, victim = hostile
    out = tmp_path / "out"
    code, _, err = _audit(capsys, world, out, "--classifier", str(files[which]))
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "is TorchScript, which runs its own code" in err and "--trust-classifier" in err and "ONNX" in err
    assert not any(victim.iterdir()) and not out.exists()
    with pytest.raises(UserError, match="runs its own code"):
        load_classifier(files[which], ModelCard())
    assert not any(victim.iterdir())


def test_trust_is_what_runs_torchscript(world, hostile, monkeypatch):
    """With trust the file runs, as the user asked: the refusal above is the only guard."""
    files, victim = hostile
    clf = load_classifier(files["load"], ModelCard(), trust=True)
    assert (victim / "pwned_load").is_file()  # its __setstate__ ran at load
    assert clf.decision_score(torch.zeros(2, 3, 8, 8)).shape == (2,)
    monkeypatch.setenv("ICEAUDIT_TRUST_CLASSIFIER", "1")
    load_classifier(world["classifier"], load_card(world["card"]))  # the environment variable is trust too


def test_an_honest_torchscript_audit_with_trust_matches_the_state_dict_route(world, tmp_path, capsys, monkeypatch):
    """The same network as TorchScript (trusted) and as state dict + a factory file: same numbers."""
    nets = tmp_path / "nets.py"
    nets.write_text(textwrap.dedent("""
        import torch

        class MeanRed(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.gain = torch.nn.Parameter(torch.ones(1))

            def forward(self, x):
                return (self.gain * x[:, 0].mean(dim=(1, 2)))[:, None]
        """))
    sys.path.insert(0, str(tmp_path))
    try:
        import nets as module
    finally:
        sys.path.remove(str(tmp_path))
    net = module.MeanRed()
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    torch.jit.save(torch.jit.script(net), str(tmp_path / "script.pt"))
    a, b = tmp_path / "a", tmp_path / "b"
    code, _, err = _audit(capsys, world, a, "--classifier", str(tmp_path / "script.pt"), "--trust-classifier")
    assert code == 0, err
    code, _, err = _audit(capsys, world, b, "--classifier", str(tmp_path / "weights.pt"), "--factory", f"{nets}:MeanRed")
    assert code == 0, err
    import pandas as pd

    pd.testing.assert_frame_equal(pd.read_parquet(a / "results.parquet"), pd.read_parquet(b / "results.parquet"))


def test_shipped_classifiers_need_no_trust():
    from iceaudit.resources import demo_classifier

    pt, card = demo_classifier("smiling")
    assert load_classifier(pt, load_card(card)).kind == "torchscript"


HOSTILE_MODULE = """
from pathlib import Path
Path({victim!r}).write_text("imported")
def build():
    Path({victim!r}).write_text("called")
"""


def test_a_factory_is_never_imported_from_the_current_directory(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    (tmp_path / "evilnets.py").write_text(HOSTILE_MODULE.format(victim=str(victim)))
    torch.save({}, tmp_path / "w.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend("")  # what `python -m iceaudit` run from this directory puts first
    with pytest.raises(UserError, match="cannot import factory 'evilnets:build'.*current directory is not imported"):
        load_classifier(tmp_path / "w.pt", ModelCard(factory="evilnets:build"))
    assert not victim.exists() and "evilnets" not in sys.modules


@pytest.mark.parametrize("spec, words", [
    ("tempfile:mkdtemp", "neither an nn.Module class nor a function annotated to return one"),
    ("os:getcwd", "neither an nn.Module class nor a function annotated to return one"),
    ("torch.nn:Linear.forward", "neither an nn.Module class"),
    ("json:nothing_here", "json has no 'nothing_here'"),
    ("no_such_package_xyz.nets:Net", "cannot import factory"),
    ("justaname", "must look like package.module:function"),
    ("a:b;import os", "must look like package.module:function"),
])
def test_factories_that_are_not_network_builders_are_refused(tmp_path, spec, words):
    torch.save({}, tmp_path / "w.pt")
    with pytest.raises(UserError, match=words):
        load_classifier(tmp_path / "w.pt", ModelCard(factory=spec))


def test_factory_files_run_only_when_the_user_names_them(tmp_path):
    victim = tmp_path / "victim.txt"
    nets = tmp_path / "nets.py"
    nets.write_text(HOSTILE_MODULE.format(victim=str(victim)) + textwrap.dedent("""
        import torch
        def typed() -> torch.nn.Module:
            return torch.nn.Identity()
        """))
    card = tmp_path / "card.toml"
    card.write_text(f'factory = "{nets}:typed"\n')
    with pytest.raises(UserError, match="names a file; a card may only name an installed package"):
        load_card(card)
    assert not victim.exists()
    torch.save({}, tmp_path / "w.pt")
    clf = load_classifier(tmp_path / "w.pt", load_card(card, factory=f"{nets}:typed"))  # named on the command line
    assert clf.kind == "module" and victim.read_text() == "imported"
    with pytest.raises(UserError, match="neither an nn.Module class"):  # `build` is not annotated
        load_classifier(tmp_path / "w.pt", ModelCard(factory=f"{nets}:build"))
    assert victim.read_text() == "imported"  # refused before it was called
    with pytest.raises(UserError, match="returned NoneType, not a torch.nn.Module"):
        load_classifier(tmp_path / "w.pt", ModelCard(factory=f"{nets}:build"), trust=True)


def test_what_counts_as_a_network_builder():
    def typed() -> torch.nn.Conv2d: ...
    def text_hint() -> "torch.nn.Module": ...
    def untyped(): ...
    def wrong() -> int: ...
    assert returns_module(torch.nn.Linear) and returns_module(typed) and returns_module(text_hint)
    assert not returns_module(untyped) and not returns_module(wrong) and not returns_module(dict)


def test_a_sweep_refuses_untrusted_torchscript_before_any_audit(world, hostile, tmp_path, capsys):
    from iceaudit.resources import demo_classifier

    files, victim = hostile
    shipped, _ = demo_classifier("smiling")
    out = tmp_path / "sweep"
    code, _, err = run_cli(capsys, "sweep", "--classifiers", f"{shipped},{files['load']}", "--policy", "fairness",
                           "--out", str(out), "--n", "4")
    assert code == 2 and "is TorchScript, which runs its own code" in err and str(files["load"]) in err
    assert not out.exists() and not any(victim.iterdir())
