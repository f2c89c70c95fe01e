"""The CI gate: exit codes, outcomes, JUnit XML, JSON, and every kind of bad policy."""
from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from iceaudit.cli import main
from record_helpers import summary_json, write_json

ROOT = Path(__file__).resolve().parents[2]
FAIRNESS = ROOT / "examples" / "policies" / "fairness-strict.toml"
RELEASE = ROOT / "examples" / "policies" / "smile-release.toml"


def err_text(capsys) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["gate", *map(str, args)])
    return exc.value.code or 0


def test_fairness_policy_fails_the_shortcut_and_writes_junit_and_json(shortcut_audit, tmp_path, capsys):
    junit, js = tmp_path / "gate.xml", tmp_path / "gate.json"
    assert run(shortcut_audit, "--policy", FAIRNESS, "--junit", junit, "--json", js) == 1
    assert "FAILED" in capsys.readouterr().out

    suite = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"protected attributes are not drivers and flip few faces [skin_tone]", "protected attributes are not drivers and flip few faces [age]"}
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = cases["protected attributes are not drivers and flip few faces [skin_tone]"].find("failure")
    assert failure is not None and "significant driver" in failure.get("message")
    assert cases["protected attributes are not drivers and flip few faces [age]"].find("failure") is None

    data = json.loads(js.read_text())
    assert data["passed"] is False and data["counts"] == {"total": 2, "passed": 1, "failed": 1, "skipped": 0}
    skin = next(o for o in data["outcomes"] if o["subject"] == "skin_tone")
    measured = {d["subspace"]: d for d in summary_json(shortcut_audit)["drivers"]}["skin_tone"]
    flip = next(c for c in skin["checks"] if c["check"] == "max_flip_rate")
    assert flip["value"] == measured["flip_rate"] and flip["limit"] == 0.10 and flip["passed"] is False


def test_fairness_policy_passes_the_honest_classifier(honest_audit, tmp_path, capsys):
    js = tmp_path / "gate.json"
    assert run(honest_audit, "--policy", FAIRNESS, "--json", js) == 0
    assert "PASSED" in capsys.readouterr().out
    assert json.loads(js.read_text())["passed"] is True


def test_release_policy_catches_a_regression_against_the_baseline(shortcut_audit, honest_audit, tmp_path):
    js = tmp_path / "gate.json"
    assert run(honest_audit, "--policy", RELEASE, "--baseline", honest_audit / "summary.json", "--json", js) == 0
    assert run(shortcut_audit, "--policy", RELEASE, "--baseline", honest_audit / "summary.json", "--json", js) == 1
    data = json.loads(js.read_text())
    failed = {(o["rule"], o["subject"]) for o in data["outcomes"] if not o["passed"] and not o["skipped"]}
    assert ("no regression since the last release", "skin_tone") in failed
    assert ("smile is the signal", "smile") not in failed


def test_release_policy_requires_a_baseline(shortcut_audit, capsys):
    assert run(shortcut_audit, "--policy", RELEASE) == 2
    err = err_text(capsys)
    assert "requires a baseline" in err and "smile-release.toml:" in err


def test_optional_baseline_rule_is_skipped_without_baseline(honest_audit, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[[require]]\nsubspace = "smile"\n\n[baseline]\nmax_abs_slope_increase = 0.01\n')
    js = tmp_path / "g.json"
    assert run(honest_audit, "--policy", policy, "--json", js) == 0
    outcomes = json.loads(js.read_text())["outcomes"]
    assert [o["skipped"] for o in outcomes] == [False, True]


def test_required_driver_that_is_not_significant_fails(honest_audit, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[[require]]\nsubspace = "background"\n')
    assert run(honest_audit, "--policy", policy) == 1


def test_subspace_in_bank_but_not_measured_fails(honest_audit, tmp_path):
    summary = summary_json(honest_audit)
    summary["drivers"] = [d for d in summary["drivers"] if d["subspace"] != "age"]
    write_json(summary, tmp_path / "summary.json")
    assert run(tmp_path, "--policy", FAIRNESS) == 1


BAD = {
    "malformed": ('[[rule]]\ntag = "protected"\nmax_abs_slope = = 1\n', "not valid TOML", "line 3"),
    "unknown_key": ('[[rule]]\ntag = "protected"\nmax_slope = 0.1\n', "unknown key 'max_slope'", "p.toml:3"),
    "wrong_type": ('[[rule]]\ntag = "protected"\nmust_not_be_significant = "yes"\n', "true or false", "p.toml:3"),
    "rate_out_of_range": ('[[rule]]\nsubspace = "smile"\nmax_flip_rate = 1.5\n', "between 0 and 1", "p.toml:3"),
    "unknown_subspace": ('name = "x"\n\n[[rule]]\nsubspace = "smiel"\nmax_abs_slope = 0.1\n', "did you mean 'smile'", "p.toml:3"),
    "unknown_tag": ('[[rule]]\ntag = "protekted"\nmax_abs_slope = 0.1\n', "no subspace in this audit has tag 'protekted'", "p.toml:1"),
    "both_subjects": ('[[rule]]\ntag = "protected"\nsubspace = "smile"\nmax_abs_slope = 0.1\n', "not both", "p.toml:1"),
    "no_subject": ('[[rule]]\nmax_abs_slope = 0.1\n', "name what it applies to", "p.toml:1"),
    "no_check": ('[[rule]]\ntag = "protected"\n', "no check given", "p.toml:1"),
    "table_not_array": ('[rule]\ntag = "protected"\nmax_abs_slope = 0.1\n', "array of tables", "p.toml:1"),
    "unknown_top_key": ('nmae = "x"\n[[rule]]\ntag = "protected"\nmax_abs_slope = 0.1\n', "did you mean 'name'", "p.toml:1"),
    "empty": ('name = "nothing"\n', "has no [[rule]]", "p.toml"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_policy_is_one_clear_message_with_its_line(case, honest_audit, tmp_path, capsys):
    text, what, where = BAD[case]
    policy = tmp_path / "p.toml"
    policy.write_text(text)
    assert run(honest_audit, "--policy", policy) == 2
    err = err_text(capsys)
    assert what in err and where in err
    assert "Traceback" not in err


def test_missing_files_are_bad_input(honest_audit, tmp_path, capsys):
    assert run(tmp_path / "nowhere", "--policy", FAIRNESS) == 2
    assert "no audit summary" in err_text(capsys)
    assert run(honest_audit, "--policy", tmp_path / "none.toml") == 2
    assert "no policy file" in err_text(capsys)
    (tmp_path / "summary.json").write_text("{broken")
    assert run(honest_audit, "--policy", FAIRNESS, "--baseline", tmp_path / "summary.json") == 2
    assert "not valid JSON" in err_text(capsys)


def test_summary_with_a_broken_driver_is_bad_input(honest_audit, tmp_path, capsys):
    summary = summary_json(honest_audit)
    summary["drivers"][2]["flip_rate"] = "high"
    write_json(summary, tmp_path / "summary.json")
    assert run(tmp_path, "--policy", FAIRNESS) == 2
    assert "drivers[2].flip_rate must be a number, not a string" in err_text(capsys)


def _baseline_copy(audit: Path, tmp_path: Path, **settings) -> Path:
    """The audit's summary with some settings changed, as another release's baseline."""
    summary = json.loads((audit / "summary.json").read_text())
    summary["settings"].update(settings)
    out = tmp_path / "old" / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary))
    return out


def test_baseline_with_another_step_grid_is_refused_naming_the_difference(honest_audit, tmp_path, capsys):
    alphas = summary_json(honest_audit)["settings"]["alphas"]
    old = _baseline_copy(honest_audit, tmp_path, alphas=[a / 2 for a in alphas][::2], seed=7)
    js = tmp_path / "gate.json"
    assert run(honest_audit, "--policy", RELEASE, "--baseline", old, "--json", js) == 2
    err = err_text(capsys)
    assert "not comparable" in err and "step grid differs" in err and "face seed differs (0 vs 7" in err
    assert "Traceback" not in err and not js.exists()


def test_baseline_with_other_faces_only_warns(honest_audit, tmp_path, capsys):
    old = _baseline_copy(honest_audit, tmp_path, seed=100)
    js = tmp_path / "gate.json"
    assert run(honest_audit, "--policy", RELEASE, "--baseline", old, "--json", js) == 0
    assert "warning: face seed differs (0 vs 100 in the baseline)" in " ".join(capsys.readouterr().out.split())
    assert json.loads(js.read_text())["warnings"] == ["face seed differs (0 vs 100 in the baseline)"]


def test_allow_incomparable_turns_the_refusal_into_warnings(honest_audit, tmp_path, capsys):
    alphas = summary_json(honest_audit)["settings"]["alphas"]
    old = _baseline_copy(honest_audit, tmp_path, alphas=[2 * a for a in alphas])
    policy = tmp_path / "p.toml"
    policy.write_text("[baseline]\nmax_abs_slope_increase = 10\nallow_incomparable = true\n")
    js = tmp_path / "gate.json"
    assert run(honest_audit, "--policy", policy, "--baseline", old, "--json", js) == 0
    assert any("step grid differs" in w for w in json.loads(js.read_text())["warnings"])


def test_comparable_baseline_has_no_warning(honest_audit, tmp_path):
    js = tmp_path / "gate.json"
    assert run(honest_audit, "--policy", RELEASE, "--baseline", honest_audit / "summary.json", "--json", js) == 0
    assert json.loads(js.read_text())["warnings"] == []
