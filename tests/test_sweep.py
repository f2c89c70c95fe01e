"""`iceaudit sweep`: several FaceLab classifiers audited on the same faces, each gated, one index."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from cli_helpers import run_cli
from iceaudit.resources import examples_dir
from iceaudit.sweep import SweepIndex, find_classifiers

pytestmark = pytest.mark.slow
FACELAB = examples_dir() / "facelab"
FAST = ["--n", "8", "--subspaces", "skin_tone,smile,background", "--seed", "3"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A sweep of the skin-tone shortcut, the honest smile classifier and a file that is no model."""
    tmp = tmp_path_factory.mktemp("sweep")
    junk = tmp / "models" / "not_a_model.pt"
    junk.parent.mkdir()
    junk.write_bytes(b"these bytes are no TorchScript archive")
    models = ",".join([str(FACELAB / "smiling_skin_shortcut.pt"), str(FACELAB / "smiling.pt"), str(junk)])
    out = tmp / "sweep"
    from iceaudit.cli import main

    try:
        main(["sweep", "--classifiers", models, "--policy", "fairness", "--out", str(out), *FAST])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return out, code, junk


def test_the_index_shows_which_models_fail_and_which_could_not_be_audited(sweep):
    out, code, junk = sweep
    assert code == 2  # one input was bad (after the others were audited, gated and indexed)
    index = SweepIndex.from_json((out / "index.json").read_text())
    by_name = {m.name: m for m in index.models}
    assert list(by_name) == ["smiling_skin_shortcut", "smiling", "not_a_model"]
    assert by_name["smiling_skin_shortcut"].passed is False
    assert by_name["smiling_skin_shortcut"].failed_rules == ["protected attributes are not drivers [skin_tone]"]
    assert by_name["smiling"].passed is True and by_name["smiling"].top_driver == "smile"
    assert by_name["not_a_model"].passed is None and "not a TorchScript model" in by_name["not_a_model"].error
    # each audited model has its audit, its gate record and its report, linked from the index
    html = (out / "index.html").read_text()
    for name in ("smiling_skin_shortcut", "smiling"):
        m = by_name[name]
        assert (out / m.report).is_file() and f'href="{m.report}"' in html
        gate = json.loads((out / name / "gate.json").read_text())
        assert gate["passed"] is m.passed
    assert html.count(">FAIL<") == 1 and html.count(">pass<") == 1 and html.count(">error<") == 1
    # paired: both audits used the same faces
    seeds = {name: json.loads((out / name / "summary.json").read_text())["provenance"]["seeds"]["faces"]
             for name in ("smiling_skin_shortcut", "smiling")}
    assert seeds["smiling"] == seeds["smiling_skin_shortcut"] == [3, 10]


def test_junit_has_one_suite_per_model_with_the_gate_failures(sweep):
    out, _, _ = sweep
    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot().iter("testsuite")}
    assert set(suites) == {f"iceaudit sweep: {n}" for n in ("smiling_skin_shortcut", "smiling", "not_a_model")}
    assert suites["iceaudit sweep: smiling_skin_shortcut"].get("failures") == "1"
    assert suites["iceaudit sweep: smiling"].get("failures") == "0"
    assert suites["iceaudit sweep: not_a_model"].find("testcase/error") is not None


def test_resume_reuses_the_audits_and_gates_against_a_baseline_sweep(sweep, tmp_path, capsys):
    out, _, _ = sweep
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/results.parquet")}
    models = ",".join(str(FACELAB / f"{n}.pt") for n in ("smiling_skin_shortcut", "smiling"))
    code, stdout, _ = run_cli(capsys, "sweep", "--classifiers", models, "--policy", "fairness", "--out", str(out),
                              "--resume", "--baseline", str(out), "--format", "none", *FAST)
    assert code == 1  # the shortcut still fails; nothing is broken any more
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/results.parquet")} == before  # nothing re-audited
    index = SweepIndex.from_json((out / "index.json").read_text())
    assert [m.baseline for m in index.models] == [str(out / n / "summary.json") for n in ("smiling_skin_shortcut", "smiling")]


def test_bad_sweep_input_is_refused_before_any_audit(tmp_path, capsys):
    code, _, err = run_cli(capsys, "sweep", "--classifiers", str(tmp_path), "--policy", "fairness",
                           "--out", str(tmp_path / "o"))
    assert code == 2 and "no classifier files" in err and not (tmp_path / "o").exists()
    bad_card = tmp_path / "m.pt"
    bad_card.write_bytes(b"x")
    (tmp_path / "m.toml").write_text("threshhold = 1\n")
    code, _, err = run_cli(capsys, "sweep", "--classifiers", str(tmp_path), "--policy", "fairness",
                           "--out", str(tmp_path / "o"))
    assert code == 2 and "unknown key(s) threshhold" in err and not (tmp_path / "o").exists()
    code, _, err = run_cli(capsys, "sweep", "--classifiers", str(tmp_path), "--policy", "fairness",
                           "--out", str(tmp_path / "o"), "--backend", "ray", "--workers", "0")
    assert code == 2 and "--workers must be a whole number from 1" in err and not (tmp_path / "o").exists()
    assert find_classifiers(str(tmp_path))[0].card == tmp_path / "m.toml"
