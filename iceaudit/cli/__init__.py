"""The `iceaudit` command.

Each command parses its arguments, calls one library function, and prints
what it wrote. Bad input surfaces as `UserError` -> one message, exit 2.
Heavy imports (torch, pandas...) happen inside the commands so that `--help`
is instant.
"""
from __future__ import annotations

import sys

# each module registers its commands on `app`; imported in the order `--help` lists them
from iceaudit.cli import generator, facelab, bank, audit, report, sweep, demo  # noqa: F401,I001
from iceaudit.cli.app import _state, app, console
from iceaudit.errors import UserError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps `UserError` to exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    _state["argv"] = list(args)  # the command line, for provenance records
    debug = "--debug" in args
    try:
        app(args=args, prog_name="iceaudit", standalone_mode=True)
    except (UserError, OSError) as raised:
        from iceaudit.errors import storage_full

        err = raised if isinstance(raised, UserError) else storage_full(raised)  # a full disk is the user's to fix
        if err is None:
            raise
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
