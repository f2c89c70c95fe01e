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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps `UserError` to exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="iceaudit", standalone_mode=True)
    except UserError as err:
        if debug:
            console.print_exception()
        console.print(f"[bold red]error:[/] {err.message}", highlight=False)
        if err.hint:
            console.print(err.hint, highlight=False)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
