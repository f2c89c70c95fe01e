"""The report's baselines section reads what `run_baselines` really writes.

tests/data/report_baselines/ is an audit directory whose ``baselines`` entry and
figures are the real output of `iceaudit.audit.baselines.run_baselines` on the
baseline tests' tiny world (regenerate with tests/report/make_baselines_audit.py).
The report fixture (tests/report/sample_audit.py) must keep the same shape.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from iceaudit.errors import UserError
from iceaudit.report import build_report
from iceaudit.report.model import load_report_model
from iceaudit.report.render import templates_dir
from record_helpers import summary_json
from test_report import Cells, shown

REAL = Path(__file__).resolve().parents[1] / "data" / "report_baselines"
# dicts keyed by data (method ids, parts, subspace ids, classes), not by field names
DATA_KEYED = {"pixel", "regions", "subspaces", "classes", "walk_vs_region_by_method", "subspace_regions", "region_votes"}


def shape(x: Any, key: str = "") -> Any:
    """Field names at every level, with data-keyed dicts and lists collapsed to the union of their items."""
    if isinstance(x, dict):
        if key in DATA_KEYED:
            return {"*": _union([shape(v) for v in x.values()])}
        return {k: shape(v, k) for k, v in x.items()}
    if isinstance(x, list) and x and isinstance(x[0], (dict, list)):
        return [_union([shape(v) for v in x])]
    return None


def _union(shapes: list[Any]) -> Any:
    dicts = [s for s in shapes if isinstance(s, dict)]
    if dicts:
        keys = sorted({k for s in dicts for k in s})
        return {k: _union([s[k] for s in dicts if k in s]) for k in keys}
    lists = [s for s in shapes if isinstance(s, list)]
    if lists:
        return [_union([s[0] for s in lists if s])]
    return None


def resolve(summary: dict, path: str) -> Any:
    value: Any = summary
    for part in path.split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    audit = tmp_path_factory.mktemp("real") / "audit"
    shutil.copytree(REAL, audit)
    (html,) = build_report(audit, formats=["html"])
    return audit, html.read_text()


def test_fixture_baselines_have_the_shape_run_baselines_writes(shortcut_audit):
    real = summary_json(REAL)["baselines"]
    fixture = summary_json(shortcut_audit)["baselines"]
    assert shape(fixture) == shape(real)
    # both variants of a pixel entry and of a region record are exercised
    assert {e["status"] for e in real["pixel"].values()} == {e["status"] for e in fixture["pixel"].values()} == {"ok", "skipped"}
    assert real["attfind"]["unnamed_drivers"] and fixture["attfind"]["unnamed_drivers"]


@pytest.mark.parametrize("which", ["fixture", "real"])
def test_baselines_numbers_in_html_equal_summary(which, built_report, shortcut_audit, real_report):
    audit, html = (shortcut_audit, built_report[0].read_text()) if which == "fixture" else real_report
    summary = summary_json(audit)
    base = summary["baselines"]
    parser = Cells()
    parser.feed(html)
    cells = {c["path"]: c for c in parser.cells if c.get("path")}
    for path, c in cells.items():
        stored = resolve(summary, path)
        assert float(c["value"]) == stored, path  # exact, as stored
        tol = 0.005 + 1e-9 if c["text"].strip().endswith("%") else 5e-3 * abs(stored) + 1e-12
        assert shown(c["text"]) == pytest.approx(stored, abs=tol), (path, c["text"])
    # every number of the section is there
    expected = set()
    for mid, e in base["pixel"].items():
        if e["status"] != "ok":
            continue
        key = "share" if mid == "feature_ablation" else "mass_share"
        expected |= {f"baselines/pixel/{mid}/regions/{part}/{key}" for part in e["regions"]}
        expected |= {f"baselines/pixel/{mid}/quality/{q}" for q, v in e["quality"].items() if isinstance(v, float)}
        expected.add(f"baselines/pixel/{mid}/seconds_per_face")
    ag = base["agreement"]
    expected |= {f"baselines/agreement/{k}/rho" for k in ("walk_vs_latent", "walk_vs_latent_slope", "walk_vs_region",
                                                          "latent_vs_region") if ag[k]["rho"] is not None}
    expected |= {f"baselines/agreement/walk_vs_region_by_method/{m}/rho" for m, r in ag["walk_vs_region_by_method"].items()
                 if r["rho"] is not None and m != ag["pixel_method"]}
    expected |= {f"baselines/latent/subspaces/{s}/abs_attribution" for s in base["latent"]["subspaces"]}
    expected |= {f"baselines/attfind/classes/{c}/sufficiency" for c in base["attfind"]["classes"]}
    expected |= {f"baselines/attfind/unnamed_drivers/{i}/mean_effect" for i in range(len(base["attfind"]["unnamed_drivers"]))}
    assert expected <= set(cells), sorted(expected - set(cells))
    assert ag["statement"] in html.replace("&#39;", "'")


def test_real_output_shows_maps_skipped_methods_and_unnamed_drivers(real_report):
    audit, html = real_report
    base = summary_json(audit)["baselines"]
    model = load_report_model(audit)
    view = model.baselines
    ok = [m for m, e in base["pixel"].items() if e["status"] == "ok"]
    assert [p.id for p in view.pixel] == ok and all(p.map for p in view.pixel)
    assert html.count('class="map-img"') == len(ok)
    assert base["pixel"]["gradcam"]["reason"] in html  # skipped, with its reason
    assert len(view.unnamed) == len(base["attfind"]["unnamed_drivers"]) and all(u.strip for u in view.unnamed)
    for u in base["attfind"]["unnamed_drivers"]:
        assert f'data-channel="{u["channel"]}"' in html
    assert view.regions == [p for p in base["labels"] if p in base["pixel"]["saliency"]["regions"]]
    assert 'id="regions-table"' in html and "image missing" not in html
    assert not [m for m in model.missing if "baseline" in m or "unnamed" in m or "attribution map" in m]


def test_a_skipped_latent_step_and_no_unnamed_drivers_are_said(tmp_path):
    audit = tmp_path / "audit"
    shutil.copytree(REAL, audit)
    summary = json.loads((audit / "summary.json").read_text())
    summary["baselines"]["latent"] = {"status": "skipped", "reason": "no subspace bank"}
    summary["baselines"]["attfind"]["unnamed_drivers"] = []
    (audit / "summary.json").write_text(json.dumps(summary))
    html = build_report(audit, formats=["html"])[0].read_text()
    assert "no subspace bank" in html and 'id="latent-table"' not in html
    assert 'id="no-unnamed"' in html


def test_templates_are_found_in_a_checkout_and_in_an_installed_package(tmp_path, monkeypatch):
    monkeypatch.delenv("ICEAUDIT_TEMPLATES", raising=False)
    here = templates_dir()
    assert here == Path(__file__).resolve().parents[2] / "report_templates"
    # installed (non-editable): site-packages/iceaudit/report_templates, as setup.py installs it
    site = tmp_path / "site"
    (site / "iceaudit" / "report").mkdir(parents=True)
    shutil.copytree(here, site / "iceaudit" / "report_templates")
    assert templates_dir(site / "iceaudit" / "report" / "render.py") == site / "iceaudit" / "report_templates"
    shutil.rmtree(site / "iceaudit" / "report_templates")
    with pytest.raises(UserError, match="report templates"):
        templates_dir(site / "iceaudit" / "report" / "render.py")
    monkeypatch.setenv("ICEAUDIT_TEMPLATES", str(here))
    assert templates_dir(site / "iceaudit" / "report" / "render.py") == here
