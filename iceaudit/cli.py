"""The `iceaudit` command.

Each command parses its arguments, calls one library function, and prints
what it wrote. Bad input surfaces as `UserError` -> one message, exit 2.
Heavy imports (torch, pandas...) happen inside the commands so that `--help`
is instant.
"""
from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.console import Console

from iceaudit import __version__
from iceaudit.errors import UserError

console = Console(stderr=True)
out = Console()

app = typer.Typer(
    name="iceaudit",
    help=(
        "Audit a face classifier: walk interpretable StyleGAN2 subspaces (skin tone, "
        "smile, glasses, ...), measure how the classifier's score moves, and report "
        "which semantics drive its decision.\n\n"
        "Start with `iceaudit demo`: it runs the whole job offline on the shipped "
        "FaceLab world and writes an HTML and PDF report."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        out.print(f"iceaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


# --- generator commands (info, convert, generate) -----------------------------


# --- facelab commands ----------------------------------------------------------


# --- bank commands -------------------------------------------------------------


# --- audit command -------------------------------------------------------------


# --- report, gate and demo commands ---------------------------------------------


@app.command()
def report(
    audit_dir: str = typer.Argument(..., help="Audit directory (holds summary.json, results.parquet, images/)."),
    format: str = typer.Option("html,pdf", "--format", "-f", help="Comma-separated: html, pdf."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Policy TOML: the fairness section shows the verdict against it."),
    out_dir: Optional[str] = typer.Option(None, "--out", help="Where to write report.html / report.pdf (default: AUDIT_DIR)."),
) -> None:
    """Write the audit's report (self-contained HTML and/or PDF) from an audit directory.

    Reads only files (no model is loaded), so a report can be rebuilt anywhere:
    `iceaudit report runs/audit-1 --format html,pdf --policy examples/policies/fairness.toml`.
    """
    from iceaudit.report import build_report

    formats = [f.strip().lower() for f in format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("html", "pdf")]
    if bad or not formats:
        raise UserError(f"--format: expected html and/or pdf, got {format!r}")
    with console.status("Building the report (charts, HTML" + (", PDF" if "pdf" in formats else "") + ")…"):
        written = build_report(audit_dir, formats=formats, policy=policy, out_dir=out_dir)
    for path in written:
        out.print(str(path), soft_wrap=True, highlight=False)


@app.command()
def gate(
    audit_dir: str = typer.Argument(..., help="Audit directory or its summary.json."),
    policy: str = typer.Option(..., "--policy", help="Policy TOML (see examples/policies/)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="The previous release's summary.json (or audit directory)."),
    junit: Optional[str] = typer.Option(None, "--junit", help="Also write JUnit XML here (one testcase per rule and subspace)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Also write the results as JSON here."),
) -> None:
    """Check an audit against a policy: exit 0 when every rule holds, 1 when one fails, 2 on bad input.

    Reads only summary.json files, so it runs in any CI job:
    `iceaudit gate runs/audit-1 --policy examples/policies/fairness.toml --junit gate.xml`.
    """
    from iceaudit.gate import render_table, run_gate, write_json, write_junit

    result = run_gate(audit_dir, policy, baseline)
    render_table(result, out)
    if junit:
        write_junit(result, junit)
    if json_out:
        write_json(result, json_out)
    if not result.passed:
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps `UserError` to exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="iceaudit", standalone_mode=True)
    except UserError as err:
        if debug:
            console.print_exception()
        from rich.markup import escape

        # Messages may hold brackets ("[[rule]] #2", "[baseline]"): never read them as markup.
        console.print(f"[bold red]error:[/] {escape(err.message)}", highlight=False)
        if err.hint:
            console.print(escape(err.hint), highlight=False)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
