"""Malformed banks are refused with one message naming the fault (issue 19's list)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from cli_helpers import run_cli
from iceaudit.resources import shipped_bank


def _copy(tmp_path):
    bank = tmp_path / "bank"
    shutil.copytree(shipped_bank("demo"), bank)
    return bank, json.loads((bank / "manifest.json").read_text())


def _first(m):
    return m["subspaces"][0]


MUTATIONS = {
    "a list": (lambda m: [m], "a bank manifest is a JSON object, not a list"),
    "no subspaces": (lambda m: {**m, "subspaces": []}, "the bank has no subspaces"),
    "entry without its dimension": (lambda m: (_first(m).pop("dim"), m)[1], "lacks dim"),
    "unknown entry key": (lambda m: (_first(m).update(colour="red"), m)[1], "unknown key(s) colour"),
    "unknown top key": (lambda m: {**m, "subspace": []}, "unknown key(s) subspace"),
    "bad step range": (lambda m: (_first(m).update(step_range=["x", 2]), m)[1], "step_range must be two finite numbers"),
    "reversed step range": (lambda m: (_first(m).update(step_range=[2.0, -2.0]), m)[1], "is empty or reversed"),
    "negative unit": (lambda m: (_first(m).update(unit_norm=-1.0), m)[1], "unit_norm must be a finite number > 0"),
    "wrong type": (lambda m: (_first(m).update(tags="protected"), m)[1], "tags must be list"),
    "old schema": (lambda m: {**m, "schema_version": 0}, "bank schema version 0 is not supported"),
}


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_malformed_manifest_is_one_message(tmp_path, capsys, case):
    bank, manifest = _copy(tmp_path)
    mutate, words = MUTATIONS[case]
    (bank / "manifest.json").write_text(json.dumps(mutate(manifest)))
    code, _, err = run_cli(capsys, "bank", "list", "--bank", str(bank))
    assert code == 2 and words in err, err
    assert "Traceback" not in err


def test_deeply_nested_manifest_is_refused(tmp_path, capsys):
    bank, _ = _copy(tmp_path)
    (bank / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run_cli(capsys, "bank", "list", "--bank", str(bank))
    assert code == 2 and "nested too deeply" in err


@pytest.mark.parametrize("basis, words", [("zeros", "is all zeros"), ("skewed", "rows are not orthonormal")])
def test_a_basis_that_is_not_orthonormal_is_refused(tmp_path, capsys, basis, words):
    from safetensors.torch import load_file, save_file

    bank, manifest = _copy(tmp_path)
    tensors = load_file(str(bank / "bases.safetensors"))
    sid = _first(manifest)["id"]
    tensors[sid] = torch.zeros_like(tensors[sid]) if basis == "zeros" else tensors[sid] * 1.5
    save_file(tensors, str(bank / "bases.safetensors"))
    code, _, err = run_cli(capsys, "bank", "list", "--bank", str(bank))
    assert code == 2 and words in err and repr(sid) in err
