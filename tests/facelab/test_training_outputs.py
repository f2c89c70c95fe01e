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


def test_an_audit_imports_no_training_code(tmp_path):
    """The audit path (API, walks, baselines with the FaceLab parser, estimator criteria, report,
    gate) runs without importing iceaudit.facelab.train."""
    import os
    import subprocess
    import sys

    code = f"""
import sys
import iceaudit
from iceaudit.resources import demo_classifier
from iceaudit.criteria.estimator import load_estimator
from iceaudit.report import build_report
from iceaudit.gate import run_gate
pt, card = demo_classifier("smiling")
iceaudit.audit(pt, card, n=4, n_steps=3, n_null=2, subspaces=["smile", "skin_tone"], baselines="saliency", progress=False,
               out={str(tmp_path / "a")!r})
load_estimator("facelab-age")
build_report({str(tmp_path / "a")!r}, formats=["html"])
from iceaudit.resources import shipped_policy
run_gate({str(tmp_path / "a")!r}, shipped_policy("fairness"))
print(sorted(m for m in sys.modules if m.startswith("iceaudit.facelab")))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.strip().splitlines()[-1]
    assert "iceaudit.facelab.render" in loaded  # the FaceLab parser was used
    assert "iceaudit.facelab.train" not in loaded, loaded
