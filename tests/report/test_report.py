"""The report: built from an audit directory alone; its numbers are summary.json's numbers."""
from __future__ import annotations

import json
from html import escape
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from iceaudit.cli import main
from iceaudit.report import build_report
from iceaudit.report.model import load_report_model
from iceaudit.report.render import render_pdf
from iceaudit.record import Driver, compose_verdict, load_record
from record_helpers import summary_json


class Cells(HTMLParser):
    """Collects every element carrying data-value: (row subspace, data-field, data-path, data-value, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.row: str | None = None
        self.open: list[dict] = []
        self.cells: list[dict] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr":
            self.row = a.get("data-subspace")
        if "data-value" in a:
            self.open.append({"row": self.row, "field": a.get("data-field"), "path": a.get("data-path"),
                              "value": a["data-value"], "text": "", "tag": tag})

    def handle_endtag(self, tag):
        if self.open and self.open[-1]["tag"] == tag:
            self.cells.append(self.open.pop())

    def handle_data(self, data):
        for c in self.open:
            c["text"] += data


def shown(text: str) -> float:
    """The number a reader sees ('−0.114', '71%', '±0.0167')."""
    t = text.strip().replace("−", "-").replace("±", "")
    return float(t[:-1]) / 100 if t.endswith("%") else float(t)


def test_driver_numbers_in_html_equal_summary(built_report, shortcut_audit):
    html = built_report[0].read_text()
    parser = Cells()
    parser.feed(html)
    summary = summary_json(shortcut_audit)
    table = {(c["row"], c["field"]): c for c in parser.cells if c["field"]}
    assert {r for r, _ in table} == {d["subspace"] for d in summary["drivers"]}
    for d in summary["drivers"]:
        for field in ("slope", "ci_low", "ci_high", "flip_rate", "null_abs_slope"):
            cell = table[(d["subspace"], field)]
            assert float(cell["value"]) == d[field]  # exact, as stored
            tol = 0.005 + 1e-9 if field == "flip_rate" else 5e-3 * abs(d[field]) + 1e-12  # shown to 1% or 3 figures
            assert shown(cell["text"]) == pytest.approx(d[field], abs=tol), (d["subspace"], field, cell["text"])
    assert escape(summary["verdict"], quote=False) in html.replace("&#39;", "'")


def test_strip_scores_come_from_results_table(built_report, shortcut_audit):
    import pandas as pd

    results = pd.read_parquet(shortcut_audit / "results.parquet")
    model = load_report_model(shortcut_audit)
    strip = model.strips["smile"][1]
    for alpha, score in zip(strip.alphas, strip.scores):
        row = results[(results["sample"] == strip.sample) & (results["subspace"] == "smile") & (results["alpha"] == alpha)]
        assert score == float(row["score"].iloc[0])
    assert len(model.strips["smile"]) == 4 and len(strip.alphas) == 5


def test_html_is_self_contained_and_has_every_section(built_report):
    html = built_report[0].read_text()
    assert not re.findall(r'(?:src|href)="(?!data:|#)', html)  # nothing fetched from disk or network
    assert html.count("<script") == 1 and "<script>" in html  # one inline script (the walk viewer), nothing loaded
    assert not re.search(r"fetch\(|XMLHttpRequest|import\(", html)
    parser = Cells()
    parser.feed(html)
    for section in ("verdict", "ranking", "fairness", "counterfactuals", "baselines", "validity", "reproducibility",
                    "glossary", "driver-smile", "driver-skin_tone", "driver-age", "policy-table", "synthetic"):
        assert section in parser.ids, section
    assert "image missing" not in html


def test_policy_verdict_and_curves_reflect_the_audit(shortcut_audit):
    model = load_report_model(shortcut_audit, policy=Path(__file__).resolve().parents[2] / "examples/policies/fairness.toml")
    assert model.gate is not None and not model.gate.passed
    assert model.protected == ["skin_tone", "age"]
    assert model.detailed[:2] == ["smile", "skin_tone"]
    smile = model.curves["smile"]
    assert smile.mean[-1] > smile.mean[0] + 0.3  # the planted smile effect shows in the curve
    assert smile.null_alphas == [-2.0, 2.0]  # null walks to the ends only, as the audit writes them
    assert smile.null_mean is not None and max(smile.null_mean) - min(smile.null_mean) < 0.1


def test_missing_pieces_are_named_not_fatal(shortcut_audit, tmp_path):
    audit = tmp_path / "audit"
    shutil.copytree(shortcut_audit, audit)
    (audit / "results.parquet").unlink()
    shutil.rmtree(audit / "images" / "walks" / "smile")
    summary = json.loads((audit / "summary.json").read_text())
    summary["baselines"] = {}
    summary["verdict"] = ""
    (audit / "summary.json").write_text(json.dumps(summary))
    written = build_report(audit, formats=["html"], out_dir=tmp_path / "out")
    assert written == [tmp_path / "out" / "report.html"]
    html = written[0].read_text()
    assert "results.parquet is missing" in html
    assert "images/walks/smile/sample_0000.png is missing" in html
    assert "ran no attribution baselines" in html
    record = load_record(audit)
    verdict = compose_verdict(record.drivers, units=record.units())  # empty verdict: the report writes one
    assert "(1 SD of mouth-corner lift)" in verdict
    assert escape(verdict, quote=False) in html.replace("&#39;", "'")


def test_image_paths_outside_the_audit_are_refused(shortcut_audit, tmp_path):
    audit = tmp_path / "audit"
    shutil.copytree(shortcut_audit, audit, ignore=shutil.ignore_patterns("*.parquet"))
    summary = json.loads((audit / "summary.json").read_text())
    summary["counterfactuals"]["best"][0]["original"] = "../../../etc/hostname"
    (audit / "summary.json").write_text(json.dumps(summary))
    model = load_report_model(audit)
    assert model.counterfactuals[0].original is None
    assert any("outside the audit directory" in m for m in model.missing)


def test_pdf_renderer_reports_images_it_cannot_load(tmp_path, weasyprint_warnings):
    # The renderer admits data: URIs only; anything else is a warning, which the tests treat as failure.
    warnings = render_pdf('<p>x</p><img src="file:///nonexistent/face.png">', tmp_path / "x.pdf")
    assert warnings and any("face.png" in w for w in warnings)
    weasyprint_warnings.clear()


def run(*args) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["report", *map(str, args)])
    return exc.value.code or 0


def test_cli_prints_what_it_wrote(built_report):
    html, pdf, printed = built_report
    assert printed.split() == [str(html), str(pdf)]


def test_cli_bad_input_is_exit_2(shortcut_audit, tmp_path, capsys):
    assert run(tmp_path / "missing") == 2
    assert run(shortcut_audit, "--format", "docx", "--out", tmp_path) == 2
    assert "expected html and/or pdf" in " ".join(capsys.readouterr().err.split())
    bad_policy = tmp_path / "bad.toml"
    bad_policy.write_text('[[rule]]\ntag = "protected"\nmax_abs_slope = "small"\n')
    assert run(shortcut_audit, "--format", "html", "--policy", bad_policy, "--out", tmp_path) == 2
    assert "bad.toml:3" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "report.html").exists()
    audit = tmp_path / "audit"
    shutil.copytree(shortcut_audit, audit, ignore=shutil.ignore_patterns("images"))
    (audit / "results.parquet").write_bytes(b"not parquet")
    assert run(audit, "--format", "html", "--out", tmp_path) == 2
    assert "cannot read the results table" in " ".join(capsys.readouterr().err.split())


def test_compose_verdict_names_top_driver_and_protected_ones():
    def d(sid, slope, sig, tags=()):
        return Driver(subspace=sid, name=sid.replace("_", " "), slope=slope, ci_low=slope, ci_high=slope,
                      flip_rate=0.5, significant=sig, tags=list(tags))

    text = compose_verdict([d("smile", 0.3, True), d("skin_tone", -0.1, True, ["protected"]), d("age", 0.0, False, ["protected"])])
    assert "driven mostly by smile" in text
    assert "skin tone, a protected attribute" in text and "No significant effect of age (protected)" in text
    assert "no semantic driver" in compose_verdict([d("smile", 0.01, False)])
    assert "by skin tone, a protected attribute:" in compose_verdict([d("skin_tone", 0.4, True, ["protected"])])


def test_minimal_summary_still_makes_a_report(tmp_path):
    drivers = [{"subspace": "smile", "slope": 0.2, "ci_low": 0.1, "ci_high": 0.3, "flip_rate": 0.5, "significant": True}]
    (tmp_path / "summary.json").write_text(json.dumps({"schema_version": 1, "drivers": drivers, "provenance": {}}))
    html = build_report(tmp_path, formats=["html"])[0].read_text()
    assert "driven mostly by smile" in html
    assert "results.parquet is missing" in html and "saved no walk strips" in html


def test_null_floor_words_match_the_stated_quantile(built_report, shortcut_audit):
    from iceaudit.report.render import percentile

    assert [percentile(q) for q in (0.975, 0.95, 0.99, 0.5, 0.9)] == ["97.5th", "95th", "99th", "50th", "90th"]
    quantile = summary_json(shortcut_audit)["validity"]["null_floor"]["quantile"]
    text = " ".join(built_report[0].read_text().split())
    assert f"({percentile(quantile)} percentile)" in text and "98th percentile" not in text


def test_multi_row_subspace_pages_say_only_the_principal_direction_is_audited(tmp_path):
    import json

    from iceaudit.report import build_report
    from sample_audit import write_sample_audit

    audit = write_sample_audit(tmp_path / "a", n_faces=8)
    summary = json.loads((audit / "summary.json").read_text())
    summary["drivers"][0].setdefault("extra", {})["basis_rows"] = 3
    (audit / "summary.json").write_text(json.dumps(summary))
    html = " ".join(build_report(audit, formats=["html"])[0].read_text().split())
    first = summary["drivers"][0]["subspace"]
    page = html[html.index(f'id="driver-{first}"'):]
    assert "row 1 of 3 in the bank's basis" in page[: page.index("</section>")]
    assert html.count("principal-only") == 1  # single-row subspaces carry no such note


@pytest.mark.parametrize("keep", [1, 2])
def test_the_leakage_chart_fits_any_number_of_walks_and_long_names(shortcut_audit, tmp_path, keep):
    """A bank with one or two measured walks and long names (a StyleGAN3 bank: 'random S (L2_36_16)')
    used to make matplotlib refuse its margins; one walk alone has nothing to show."""
    from iceaudit.report import charts

    audit = tmp_path / "audit"
    shutil.copytree(shortcut_audit, audit)
    summary = json.loads((audit / "summary.json").read_text())
    leak = summary["validity"]["leakage"]
    kept = list(leak)[:keep]
    summary["validity"]["leakage"] = {r: {c: v for c, v in leak[r].items() if c in kept} for r in kept}
    for d in summary["drivers"]:
        d["name"] = d["name"] + " with a rather long description (L2_36_16)"
    (audit / "summary.json").write_text(json.dumps(summary))
    png = charts.leakage(load_report_model(audit))
    assert (png is None) == (keep == 1)
    if png is not None:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "report.html" in str(build_report(audit, formats=["html"], out_dir=tmp_path / "out")[0])
