"""`iceaudit diff OLD NEW`: what changed between two releases, as a table, JSON and HTML."""
from __future__ import annotations

import json

import pytest

from iceaudit.cli import main
from iceaudit.compare import diff
from iceaudit.record import load_record
from record_helpers import summary_json


def run(*args) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["diff", *map(str, args)])
    return exc.value.code or 0


def test_diff_of_honest_and_shortcut_releases(honest_audit, shortcut_audit, tmp_path, capsys):
    js, page = tmp_path / "diff.json", tmp_path / "diff.html"
    assert run(honest_audit, shortcut_audit, "--json", js, "--html", page) == 0
    data = json.loads(js.read_text())
    old = {d["subspace"]: d for d in summary_json(honest_audit)["drivers"]}
    new = {d["subspace"]: d for d in summary_json(shortcut_audit)["drivers"]}
    skin = next(c for c in data["changes"] if c["subspace"] == "skin_tone")
    assert skin["old"]["slope"] == old["skin_tone"]["slope"] and skin["new"]["slope"] == new["skin_tone"]["slope"]
    assert skin["abs_slope_increase"] == pytest.approx(abs(new["skin_tone"]["slope"]) - abs(old["skin_tone"]["slope"]))
    assert not old["skin_tone"]["significant"] and new["skin_tone"]["significant"]  # the fixtures' premise
    assert skin["significance"] == "became significant" and data["newly_significant_protected"] == ["skin_tone"]
    assert data["comparable"] is True and {c["subspace"] for c in data["changes"]} == set(old) & set(new)
    html = page.read_text()
    assert 'id="diff"' in html and 'data-subspace="skin_tone"' in html
    assert "skin" in capsys.readouterr().out.lower()


def test_diff_refuses_incomparable_audits_unless_allowed(honest_audit, tmp_path, capsys):
    summary = json.loads((honest_audit / "summary.json").read_text())
    summary["settings"]["psi"] = 0.5
    other = tmp_path / "other" / "summary.json"
    other.parent.mkdir()
    other.write_text(json.dumps(summary))
    assert run(honest_audit, other) == 2
    assert "truncation psi differs" in " ".join(capsys.readouterr().err.split())
    assert run(honest_audit, other, "--allow-incomparable") == 0


def test_gate_baseline_checks_use_the_diff_comparison(honest_audit, shortcut_audit):
    from iceaudit.gate import _change

    d = diff(load_record(shortcut_audit), load_record(honest_audit))
    for c in d.changes:
        assert _change(c.new, c.old).abs_slope_increase == c.abs_slope_increase
        assert _change(c.new, c.old).flip_rate_increase == c.flip_rate_increase
