"""Bad numbers and directories for `iceaudit audit`: exit 2, one message naming the flag,
no traceback, nothing written (issue 19's list)."""
from __future__ import annotations

import pytest

from cli_helpers import run_cli


@pytest.mark.parametrize("args, words", [
    (["--n", "1000000000"], "--n must be a whole number from 2 to 65536"),
    (["--n", "1"], "--n must be a whole number from 2 to 65536"),
    (["--batch", "-1"], "--batch must be a whole number from 1 to 65536"),
    (["--batch", "0"], "--batch must be a whole number from 1 to 65536"),
    (["--psi", "nan"], "--psi must be a number from 0.0 to 1.5"),
    (["--psi", "inf"], "--psi must be a number from 0.0 to 1.5"),
    (["--psi", "5"], "--psi must be a number from 0.0 to 1.5"),
    (["--psi", "-1"], "--psi must be a number from 0.0 to 1.5"),
    (["--steps", "1"], "--steps must be a whole number from 2 to 201"),
    (["--null", "1"], "--null must be a whole number from 2 to 1000"),
    (["--seed", "-5"], "--seed must be a whole number from 0"),
    (["--shard-faces", "0"], "--shard-faces must be a whole number at least 1"),
    (["--workers", "0", "--backend", "ray"], "--workers must be a whole number from 1"),
    (["--backend", "dask"], "--backend must be one of local, ray"),
])
def test_bad_numbers_are_refused_before_any_work(world, tmp_path, capsys, args, words):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "audit", "--classifier", str(world["classifier"]), "--card", str(world["card"]),
                           "--generator", str(world["generator"]), "--bank", str(world["bank"]), "--out", str(out),
                           "--baselines", "none", *args)
    assert code == 2 and words in err, err
    assert "Traceback" not in err and err.count("error:") == 1
    assert not out.exists()


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_resume_without_an_interrupted_audit_is_refused(world, tmp_path, capsys, make):
    out = tmp_path / "out"
    if make == "empty":
        out.mkdir()
    code, _, err = run_cli(capsys, "audit", "--classifier", str(world["classifier"]), "--card", str(world["card"]),
                           "--generator", str(world["generator"]), "--bank", str(world["bank"]), "--out", str(out),
                           "--resume")
    assert code == 2 and "holds no interrupted audit" in err and "without --resume" in err
    assert (out.is_dir() and not any(out.iterdir())) if make == "empty" else not out.exists()


def test_flat_options_land_in_their_part_and_unknown_ones_are_refused():
    from iceaudit.audit.settings import AuditSettings

    s = AuditSettings.of(n=16, out="runs/a", backend="ray", precision="bf16")
    assert (s.science.n, s.science.precision, s.output.out, s.run.backend) == (16, "bf16", "runs/a", "ray")
    t = s.replace(out=None, seed=3)
    assert (t.output.out, t.science.seed, t.science.n, t.run.backend) == (None, 3, 16, "ray")
    assert s.output.out == "runs/a"  # replace copies
    assert set(AuditSettings.option_names()) >= {"n", "out", "backend", "shard_faces", "strip_faces"}
    with pytest.raises(TypeError, match="unknown audit option 'nn'"):
        AuditSettings.of(nn=3)
