"""`iceaudit report`, `gate` and `diff`: what later stages do with an audit directory."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from iceaudit.cli.app import app, console, out
from iceaudit.errors import UserError


# --- report, gate and demo commands ---------------------------------------------


def _report_formats(value: str) -> list[str]:
    """``--format html,pdf`` -> ["html", "pdf"]; anything else is bad input (checked before any work)."""
    formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("html", "pdf")]
    if bad or not formats:
        raise UserError(f"--format: expected html and/or pdf, got {value!r}")
    return formats


@app.command()
def report(
    audit_dir: str = typer.Argument(..., help="Audit directory (holds summary.json, results.parquet, images/)."),
    format: str = typer.Option("html,pdf", "--format", "-f", help="Comma-separated: html, pdf."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Policy TOML, or a shipped policy's name (fairness, fairness-strict, smile-release): the fairness section shows the verdict against it."),
    out_dir: Optional[str] = typer.Option(None, "--out", help="Where to write report.html / report.pdf (default: AUDIT_DIR)."),
) -> None:
    """Write the audit's report (self-contained HTML and/or PDF) from an audit directory.

    Reads only files (no model is loaded), so a report can be rebuilt anywhere:
    `iceaudit report runs/audit-1 --format html,pdf --policy examples/policies/fairness.toml`.
    """
    from iceaudit.report import build_report
    from iceaudit.resources import shipped_policy

    formats = _report_formats(format)
    with console.status("Building the report (charts, HTML" + (", PDF" if "pdf" in formats else "") + ")…"):
        written = build_report(audit_dir, formats=formats, policy=policy and shipped_policy(policy), out_dir=out_dir)
    for path in written:
        out.print(str(path), soft_wrap=True, highlight=False)


@app.command()
def gate(
    audit_dir: str = typer.Argument(..., help="Audit directory or its summary.json."),
    policy: str = typer.Option(..., "--policy", help="Policy TOML, or a shipped policy's name: fairness, fairness-strict, smile-release."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="The previous release's summary.json (or audit directory)."),
    junit: Optional[str] = typer.Option(None, "--junit", help="Also write JUnit XML here (one testcase per rule and subspace)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Also write the results as JSON here."),
) -> None:
    """Check an audit against a policy: exit 0 when every rule holds, 1 when one fails, 2 on bad input.

    Reads only summary.json files, so it runs in any CI job:
    `iceaudit gate runs/audit-1 --policy examples/policies/fairness.toml --junit gate.xml`.
    """
    from iceaudit.atomic import check_output_path, ensure_dir
    from iceaudit.gate import render_table, run_gate, write_json, write_junit
    from iceaudit.resources import shipped_policy

    for target in (junit, json_out):  # an unwritable output is refused before the gate runs
        if target:
            ensure_dir(Path(target).parent)
            check_output_path(target)
    result = run_gate(audit_dir, shipped_policy(policy), baseline)
    render_table(result, out)
    if junit:
        write_junit(result, junit)
    if json_out:
        write_json(result, json_out)
    if not result.passed:
        raise typer.Exit(1)


@app.command("diff")
def diff_command(
    old: str = typer.Argument(..., help="The baseline audit (directory or its summary.json), e.g. the last release."),
    new: str = typer.Argument(..., help="The candidate audit (directory or summary.json)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Also write the comparison as JSON here."),
    html_out: Optional[str] = typer.Option(None, "--html", help="Also write it as an HTML page (one section) here."),
    allow_incomparable: bool = typer.Option(False, "--allow-incomparable",
                                            help="Compare even when the audits used another generator, bank, step grid or psi."),
) -> None:
    """What changed between two audits: slopes with CIs, flip rates, significance, newly significant protected attributes.

    Reads only summary.json files. The gate's [baseline] rules use the same comparison:
    `iceaudit diff releases/1.2/audit runs/audit-1.3 --html diff.html`.
    """
    import json

    from rich.markup import escape
    from rich.table import Table

    from iceaudit.atomic import check_output_path, write_text
    from iceaudit.compare import diff, diff_html, slope_with_ci
    from iceaudit.record import load_record

    for target in (json_out, html_out):
        if target:
            check_output_path(target)

    d = diff(load_record(new), load_record(old))
    if not d.comparable and not allow_incomparable:
        raise UserError(f"{old} and {new} are not comparable: " + "; ".join(d.differences_text()),
                        hint="Audit both with the same generator, bank and step grid, or pass --allow-incomparable.")
    table = Table(title=escape(f"{old} → {new}"), title_justify="left")
    for col in ("subspace", "slope, baseline [95% CI]", "slope, new [95% CI]", "|slope| change", "flip rate", "significance"):
        table.add_column(col, justify="left" if col in ("subspace", "significance") else "right")
    for c in d.changes:
        table.add_row(escape(c.name + (" (protected)" if c.protected else "")), slope_with_ci(c.old),
                      slope_with_ci(c.new), f"{c.abs_slope_increase:+.3g}", c.flip_rates(), c.significance)
    out.print(table)
    for w in d.differences_text():
        console.print(f"[yellow]warning:[/] {escape(w)}")
    if d.newly_significant_protected:
        out.print("newly significant protected attributes: " + ", ".join(d.newly_significant_protected))
    if json_out:
        write_text(json_out, json.dumps(d.to_dict(), indent=2) + "\n")
    if html_out:
        write_text(html_out, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>iceaudit diff</title></head><body>"
                   + diff_html(d, old, new) + "</body></html>\n")
