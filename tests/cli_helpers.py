"""Run the `iceaudit` console entry point in-process and collect its exit code and output."""
from __future__ import annotations

from iceaudit.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr with rich's line wrapping undone)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out, " ".join(cap.err.split())
