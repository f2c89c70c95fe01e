"""`iceaudit bank build / list / show / sheet / validate` through the console entry point."""
from __future__ import annotations

import json

import pytest
import tiny_stylegan
import torch
from cli_helpers import run_cli

from iceaudit.cli import main
from iceaudit.criteria.bisenet import BiSeNetParser
from iceaudit.stylegan2.loaders import save_native

RECIPE = """
[bank]
name = "tiny"
faces = 1
calibration_faces = 4
validation_faces = 4

[eyes]
parser = "bisenet"
label_order = "bisenet"

[[subspace]]
id = "skin"
name = "Skin colour"
description = "Mean colour of the skin."
tags = ["protected", "skin-tone"]
method = "ice"
criterion = { kind = "region_colour", regions = ["skin"], size = 16 }
suppress = ["self"]
thresholds = { r = 1e-2, t = 1e-6 }  # random-weight parser: keep whatever survives

[[subspace]]
id = "chan"
name = "One style channel"
description = "b16.conv1 channel 1, literature-style."
method = "literature"
channels = ["6_1"]
verified = false
"""


run = run_cli


def _gen(seed):
    return tiny_stylegan.tiny_generator(seed, w_dim=8, channel_base=64, channel_max=8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    save_native(_gen(0), d / "g1")
    save_native(_gen(1), d / "g2")
    torch.save(BiSeNetParser.random().net.state_dict(), d / "parser.pth")
    (d / "tiny.toml").write_text(RECIPE)
    return d


@pytest.fixture(scope="module")
def built(world):
    code = None
    try:
        main(["bank", "build", "--generator", str(world / "g1.safetensors"), "--recipe", str(world / "tiny.toml"),
              "--parser", str(world / "parser.pth"), "--parser-size", "32", "--out", str(world / "bank"),
              "--keep-failing"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    return world / "bank"


def test_build_writes_bank_and_list_show(built, capsys):
    manifest = json.loads((built / "manifest.json").read_text())
    assert {s["id"] for s in manifest["subspaces"]} == {"skin", "chan"}
    assert (built / "bases.safetensors").is_file() and (built / "validation.json").is_file()
    code, out, _ = run(capsys, "bank", "list", "--bank", str(built))
    assert code == 0 and "skin" in out and "chan" in out
    code, out, _ = run(capsys, "bank", "show", "skin", "--bank", str(built))
    assert code == 0 and "1 SD" in out and "own_effect" in out
    code, _, err = run(capsys, "bank", "show", "nope", "--bank", str(built))
    assert code == 2 and "no subspace 'nope'" in err and "Traceback" not in err


def test_sheet_and_refusal_of_another_generator(built, world, capsys):
    png = world / "sheet.png"
    code, _, err = run(capsys, "bank", "sheet", "--generator", str(world / "g1.safetensors"), "--bank", str(built),
                       "--out", str(png), "--steps", "3", "--cell", "16")
    assert code == 0, err
    from PIL import Image

    w, h = Image.open(png).size
    assert h == 22 + 2 * 18 and w == 190 + 3 * 18
    code, _, err = run(capsys, "bank", "sheet", "--generator", str(world / "g2.safetensors"), "--bank", str(built),
                       "--out", str(world / "other.png"))
    assert code == 2 and "was built for generator" in err and "Traceback" not in err
    assert not (world / "other.png").exists()


def test_validate_stores_figures(built, world, capsys):
    (built / "validation.json").unlink()
    code, out, err = run(capsys, "bank", "validate", "--generator", str(world / "g1.safetensors"), "--bank", str(built),
                         "--parser", str(world / "parser.pth"), "--parser-size", "32", "--faces", "4")
    assert code == 0, err
    reports = json.loads((built / "validation.json").read_text())
    assert set(reports) == {"skin"} and "max_leakage" in reports["skin"]


def test_unknown_truth_reader_exits_2_and_keeps_the_bank(built, world, capsys):
    before = (built / "manifest.json").read_bytes()
    code, out, err = run(capsys, "bank", "validate", "--generator", str(world / "g1.safetensors"), "--bank", str(built),
                         "--parser", str(world / "parser.pth"), "--parser-size", "32", "--faces", "4", "--truth", "oracle")
    assert code == 2 and "unknown --truth 'oracle'" in err and "Traceback" not in err
    assert (built / "manifest.json").read_bytes() == before


def test_missing_weights_name_the_file_and_where_to_put_it(world, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    code, _, err = run(capsys, "bank", "build", "--generator", str(world / "g1.safetensors"), "--recipe", "ffhq",
                       "--landmarks", "fan", "--parser", str(world / "parser.pth"), "--out", str(tmp_path / "b"))
    flat = "".join(err.split())  # rich wraps long paths
    assert code == 2 and "2DFAN4-11f355bf06.pth.tar" in flat and str(tmp_path / "th" / "hub" / "checkpoints") in flat
    code, _, err = run(capsys, "bank", "build", "--generator", str(world / "g1.safetensors"), "--recipe", "ffhq",
                       "--landmarks", str(tmp_path / "nope.tar"), "--parser", str(world / "parser.pth"),
                       "--out", str(tmp_path / "b"))
    assert code == 2 and "nope.tar" in "".join(err.split())
    code, _, err = run(capsys, "bank", "build", "--generator", str(world / "g1.safetensors"), "--recipe", "ffhq",
                       "--landmarks", "none", "--parser", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "b"))
    assert code == 2 and "missing.pth" in "".join(err.split())
    code, _, err = run(capsys, "bank", "build", "--generator", str(world / "g1.safetensors"), "--recipe", "nosuch",
                       "--out", str(tmp_path / "b"))
    assert code == 2 and "recipe 'nosuch' not found" in err
    assert not (tmp_path / "b").exists()


def test_validate_defaults_to_the_shipped_generator_the_bank_records(capsys, tmp_path):
    import shutil

    from iceaudit.resources import shipped_bank

    copy = tmp_path / "demo-copy"
    shutil.copytree(shipped_bank("demo"), copy)  # validate rewrites the bank: never the shipped one
    (copy / "validation.json").unlink()
    code, out, err = run(capsys, "bank", "validate", "--bank", str(copy), "--faces", "2")
    assert code in (0, 1), err  # a verdict (2 faces may fail thresholds), not a usage error
    assert "using generator 'demo'" in " ".join((out + err).split())
    assert json.loads((copy / "validation.json").read_text())


def test_validate_without_generator_for_an_unshipped_one_exits_2(built, capsys):
    before = (built / "manifest.json").read_bytes()
    code, out, err = run(capsys, "bank", "validate", "--bank", str(built), "--faces", "2")
    assert code == 2 and "not one iceaudit ships" in err and "--generator" in err and "Traceback" not in err
    assert (built / "manifest.json").read_bytes() == before
