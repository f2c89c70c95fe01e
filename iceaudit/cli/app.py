"""The `iceaudit` Typer application, its consoles, its root options and shared help."""
from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from iceaudit import __version__

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

TRUST_HELP = ("Run a TorchScript classifier file (it carries code that runs on load and on every batch) and accept "
              "any factory callable: only for models whose source you trust. ONNX and state dict + --factory "
              "need no trust (docs/security.md).")

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
