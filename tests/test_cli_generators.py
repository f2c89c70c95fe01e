"""`iceaudit info / convert / generate` through the console entry point:
good input works, bad input gives exit code 2 and one message, no traceback."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from stylegan2_io_fakes import Evil, generator_tree, official_init_kwargs, training_snapshot, write_pickle  # noqa: E402

from iceaudit import load_generator  # noqa: E402
from iceaudit.cli import main  # noqa: E402
from iceaudit.errors import UserError  # noqa: E402
from iceaudit.stylegan2.generate import z_from_seeds  # noqa: E402
from iceaudit.stylegan2.loaders import save_native  # noqa: E402
from iceaudit.stylegan2.networks import Generator  # noqa: E402

ROSI = Path(__file__).parent / "data" / "rosinality" / "tiny16.pt"


def run(capsys, *args):
    """(exit code, stdout, stderr with whitespace collapsed)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def assert_user_error(code, err, *needles):
    assert code == 2, err
    assert err.count("error:") == 1, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


@pytest.fixture
def tiny_pkl(tmp_path):
    torch.manual_seed(0)
    G = Generator(16, 0, 16, 16, 3, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=128, channel_max=32)).eval()
    return write_pickle(training_snapshot(G), tmp_path / "snap.pkl"), G


# --- working paths --------------------------------------------------------------------


def test_info_table_and_json(capsys, tiny_pkl):
    path, G = tiny_pkl
    code, out, err = run(capsys, "info", str(path))
    assert code == 0, err
    flat = " ".join(out.split())
    assert "nvidia-pickle" in flat and "b16.torgb" in flat and "b4.conv1" in flat
    assert G.fingerprint()[:20] in out.replace("\n", "").replace(" ", "").replace("│", "")
    code, out, _ = run(capsys, "info", str(path), "--json")
    facts = json.loads(out)
    assert facts["fingerprint"] == G.fingerprint()
    assert (facts["img_resolution"], facts["num_ws"], facts["mapping_layers"]) == (16, G.num_ws, 2)
    assert [s["name"] for s in facts["style_layers"]] == [s.name for s in G.style_layers]
    assert [s["channels"] for s in facts["style_layers"]] == [s.channels for s in G.style_layers]


def test_convert_pickle_to_native_and_rosinality(capsys, tiny_pkl, tmp_path):
    path, G = tiny_pkl
    code, out, err = run(capsys, "convert", str(path), str(tmp_path / "net.safetensors"))
    assert code == 0, err
    assert (tmp_path / "net.json").is_file() and G.fingerprint() in out
    assert load_generator(tmp_path / "net.safetensors").fingerprint() == G.fingerprint()
    code, out, err = run(capsys, "convert", str(tmp_path / "net.json"), str(tmp_path / "net.pt"))
    assert code == 0, err
    assert load_generator(tmp_path / "net.pt").fingerprint() == G.fingerprint()


def test_convert_never_writes_pickles(capsys, tiny_pkl, tmp_path):
    path, _ = tiny_pkl
    code, _, err = run(capsys, "convert", str(path), str(tmp_path / "out.pkl"))
    assert_user_error(code, err, "does not write pickles")
    assert not (tmp_path / "out.pkl").exists()


def test_generate_grid_matches_generator(capsys, tmp_path):
    from PIL import Image

    out_png = tmp_path / "grid.png"
    code, out, err = run(capsys, "generate", "--generator", str(ROSI), "--seeds", "0-3,7",
                         "--psi", "0.5", "--out", str(out_png), "--device", "cpu", "--cols", "3")
    assert code == 0, err
    grid = np.asarray(Image.open(out_png))
    assert grid.shape == (2 * 16, 3 * 16, 3)
    G = load_generator(ROSI)
    with torch.no_grad():
        img = G(z_from_seeds([7], G.z_dim), None, psi=0.5)
    expected = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(grid[16:32, 16:32], expected)  # 5th face: row 1, column 1
    assert not grid[16:32, 32:48].any()  # empty cell stays black
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temp files left


# --- bad input: exit 2, one message, no traceback, nothing run, nothing lost -----------


def test_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "info", str(tmp_path / "nope.pkl"))
    assert_user_error(code, err, "no such file", "nope.pkl")


@pytest.mark.parametrize("kind", ["pkl", "pt", "safetensors"])
def test_truncated_files(capsys, tmp_path, tiny_pkl, kind):
    path, G = tiny_pkl
    if kind == "pt":
        shutil.copy(ROSI, tmp_path / "g.pt")
        path = tmp_path / "g.pt"
    elif kind == "safetensors":
        path, _ = save_native(G, tmp_path / "g")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "info", str(path))
    assert_user_error(code, err, str(path.name))
    assert any(w in err for w in ("truncated", "corrupt")), err


@pytest.mark.parametrize("content,what", [
    (b"just some notes\nnot a network\n", "text file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG image"),
])
def test_wrong_format(capsys, tmp_path, content, what):
    path = tmp_path / "net.pkl"
    path.write_bytes(content)
    code, _, err = run(capsys, "info", str(path))
    assert_user_error(code, err, what)


def test_forbidden_global_named_and_not_run(capsys, tmp_path, tiny_pkl):
    _, G = tiny_pkl
    marker = tmp_path / "pwned"
    snap = training_snapshot(G, extra={"x": Evil(os.system, f"touch {marker}")})
    path = write_pickle(snap, tmp_path / "evil.pkl")
    code, _, err = run(capsys, "generate", "-g", str(path), "--out", str(tmp_path / "g.png"))
    assert_user_error(code, err, "posix.system", "nothing from the file was executed")
    assert not marker.exists() and not (tmp_path / "g.png").exists()


def test_missing_tensor(capsys, tmp_path, tiny_pkl):
    _, G = tiny_pkl
    state = G.state_dict()
    del state["synthesis.b8.conv1.affine.weight"]
    path = write_pickle({"G_ema": generator_tree(state, official_init_kwargs(G))}, tmp_path / "g.pkl")
    code, _, err = run(capsys, "info", str(path))
    assert_user_error(code, err, "lacks tensors", "synthesis.b8.conv1.affine.weight")


def test_misshaped_tensor(capsys, tmp_path):
    ckpt = torch.load(ROSI, weights_only=True)
    ckpt["g_ema"]["convs.1.conv.weight"] = torch.randn(1, 32, 16, 3, 3)
    torch.save(ckpt, tmp_path / "g.pt")
    code, _, err = run(capsys, "info", str(tmp_path / "g.pt"))
    assert_user_error(code, err, "wrong shape", "synthesis.b8.conv1.weight")


def test_torch_checkpoint_with_forbidden_global(capsys, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"g_ema": Evil(os.system, f"touch {marker}")}, tmp_path / "evil.pt")
    code, _, err = run(capsys, "info", str(tmp_path / "evil.pt"))
    assert_user_error(code, err, "refused to load", "posix.system", "nothing from the file was executed")
    assert not marker.exists()


@pytest.mark.parametrize("seeds", ["1-", "x", "5-2", "1,,2"])
def test_bad_seeds(capsys, tmp_path, seeds):
    code, _, err = run(capsys, "generate", "-g", str(ROSI), "--seeds", seeds, "--out", str(tmp_path / "g.png"))
    assert_user_error(code, err, "bad seeds")


def test_output_directory_missing(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "-g", str(ROSI), "--out", str(tmp_path / "no" / "dir" / "g.png"))
    assert_user_error(code, err, "output directory does not exist")
    code, _, err = run(capsys, "convert", str(ROSI), str(tmp_path / "no" / "net"))
    assert_user_error(code, err, "output directory does not exist")


def test_failed_generate_keeps_existing_output(capsys, tmp_path, monkeypatch):
    out_png = tmp_path / "grid.png"
    out_png.write_bytes(b"previous grid")
    code, _, err = run(capsys, "generate", "-g", str(tmp_path / "missing.pkl"), "--out", str(out_png))
    assert_user_error(code, err, "no such file")
    from PIL import Image

    def broken_save(self, *a, **k):
        raise UserError("simulated failure while writing")
    monkeypatch.setattr(Image.Image, "save", broken_save)
    code, _, err = run(capsys, "generate", "-g", str(ROSI), "--seeds", "0", "--out", str(out_png))
    assert_user_error(code, err, "simulated failure")
    assert out_png.read_bytes() == b"previous grid"
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_debug_shows_traceback(capsys, tmp_path):
    code, _, err = run(capsys, "--debug", "info", str(tmp_path / "nope.pkl"))
    assert code == 2
    assert "Traceback" in err and "no such file" in err


def test_conditional_generator_needs_a_class(capsys, tmp_path):
    torch.manual_seed(0)
    G = Generator(16, 3, 16, 8, 3, synthesis_kwargs=dict(channel_base=64, channel_max=16)).eval()
    save_native(G, tmp_path / "cond")
    args = ["generate", "-g", str(tmp_path / "cond.json"), "--seeds", "0-1", "--out", str(tmp_path / "g.png")]
    code, _, err = run(capsys, *args)
    assert_user_error(code, err, "conditional", "--class-idx")
    code, _, err = run(capsys, *args, "--class-idx", "5")
    assert_user_error(code, err, "--class-idx must be in 0..2")
    code, _, err = run(capsys, *args, "--class-idx", "2")
    assert code == 0, err
    from PIL import Image
    with torch.no_grad():
        img = G(z_from_seeds([1], 16), torch.tensor([[0.0, 0.0, 1.0]]), psi=0.7)
    expected = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png"))[:, 8:16], expected)



def _tiny_native(tmp_path):
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
                  synthesis_kwargs={"channel_base": 128, "channel_max": 16})
    weights, config = save_native(G, tmp_path / "g")
    return weights, config, json.loads(config.read_text())


@pytest.mark.parametrize("case, words", [
    ("deeply nested", "nested too deeply to be a generator config"),
    ("a list", "is not an iceaudit generator config"),
    ("version of another kind", "has format_version 'x'"),
    ("unknown nested kwarg", "cannot build a StyleGAN2 generator from its config"),
    ("kwargs not a mapping", "generator config is not a mapping"),
    ("no fingerprint", "lacks 'fingerprint'"),
])
def test_malformed_native_metadata_is_one_message(tmp_path, capsys, case, words):
    weights, config, base = _tiny_native(tmp_path)
    kwargs = base["init_kwargs"]
    text = {
        "deeply nested": "[" * 200_000 + "]" * 200_000,
        "a list": json.dumps([base]),
        "version of another kind": json.dumps({**base, "format_version": "x"}),
        "unknown nested kwarg": json.dumps({**base, "init_kwargs": {**kwargs, "mapping_kwargs": {"a": {"b": {}}}}}),
        "kwargs not a mapping": json.dumps({**base, "init_kwargs": "x"}),
        "no fingerprint": json.dumps({k: v for k, v in base.items() if k != "fingerprint"}),
    }[case]
    config.write_text(text)
    try:
        main(["info", str(weights)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and words in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("kwargs, words", [
    ("deep", "nested deeper than 16 levels"),
    ("list", "malformed constructor arguments"),
    ("int_keys", "malformed constructor arguments"),
])
def test_malformed_init_kwargs_are_one_message(capsys, tmp_path, tiny_pkl, kwargs, words):
    _, G = tiny_pkl
    nested: object = 0
    for _ in range(3000):  # deeper than Python's recursion limit (1000)
        nested = [nested]
    bad = {"deep": {**official_init_kwargs(G), "mapping_kwargs": {"x": nested}},
           "list": [1, 2, 3], "int_keys": {1: 2}}[kwargs]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # only to write the hostile file
    try:
        path = write_pickle({"G_ema": generator_tree(G.state_dict(), bad)}, tmp_path / "g.pkl")
    finally:
        sys.setrecursionlimit(limit)
    code, _, err = run(capsys, "info", str(path))
    assert_user_error(code, err, words)
