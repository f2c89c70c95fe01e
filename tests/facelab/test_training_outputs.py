"""No FaceLab training command writes into the installed package unless told to (issue 18):
every `--out` default lies outside iceaudit/, and evaluate-readers needs its --assets named."""
from __future__ import annotations

from pathlib import Path

import typer.main

import iceaudit
from iceaudit.cli import app

PACKAGE = Path(iceaudit.__file__).resolve().parent


def _facelab_commands():
    group = typer.main.get_command(app).commands["facelab"]
    return group.commands


def test_no_training_command_writes_into_the_package_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(PACKAGE.parent)  # a checkout's root: relative defaults would land in iceaudit/ here
    checked = 0
    for name, command in _facelab_commands().items():
        for param in command.params:
            if "--out" in getattr(param, "opts", ()) and param.default is not None:
                assert not Path(param.default).resolve().is_relative_to(PACKAGE), (name, param.default)
                checked += 1
    assert checked >= 6  # landmarks, parser, reader, estimator, generator, knobs, classifiers, render


def test_evaluate_readers_needs_the_assets_directory_named():
    params = {p.name: p for p in _facelab_commands()["evaluate-readers"].params}
    assert params["assets"].required
