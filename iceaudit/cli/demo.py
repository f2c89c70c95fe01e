"""`iceaudit demo`: the whole job on the shipped FaceLab world."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from iceaudit.cli.app import app, console, out, _state
from iceaudit.cli.audit import _print_drivers
from iceaudit.cli.report import _report_formats
from iceaudit.errors import UserError


DEMO_CLASSIFIERS = ("smiling_skin_shortcut", "smiling", "eyeglasses_background_shortcut", "random_init")


@app.command()
def demo(
    classifier: str = typer.Option("smiling_skin_shortcut", "--classifier", "-c",
                                   help="Shipped FaceLab classifier: " + ", ".join(DEMO_CLASSIFIERS) + "."),
    out_dir: Optional[str] = typer.Option(None, "--out", "-o", help="Audit directory to write (default: demo-out/CLASSIFIER); the reports go inside it."),
    n: int = typer.Option(32, "--n", min=4, help="Number of faces."),
    seed: int = typer.Option(0, "--seed", help="First face seed."),
    format: str = typer.Option("html,pdf", "--format", "-f", help="Report formats: html, pdf."),
    policy: str = typer.Option("fairness", "--policy", help="Policy the fairness section is checked against: a TOML file, or a shipped policy's name (fairness, fairness-strict, smile-release)."),
) -> None:
    """Run the whole job offline on FaceLab: audit a shipped classifier, then write its report.

    Uses the shipped demo generator (`load_generator("demo")`), the demo subspace bank
    (shipped in the package) and a planted FaceLab classifier, whose true
    dependencies are known (docs/facelab.md). The default, `smiling_skin_shortcut`, was
    trained on data where skin tone predicted the smile label: the report should say so.
    """
    import shlex
    from pathlib import Path

    from iceaudit.api import audit
    from iceaudit.audit.baselines import DEFAULT_METHODS
    from iceaudit.gate import load_policy
    from iceaudit.report import build_report
    from iceaudit.resources import demo_classifier, shipped_policy

    if classifier not in DEMO_CLASSIFIERS:
        raise UserError(f"unknown demo classifier {classifier!r}; choose one of: {', '.join(DEMO_CLASSIFIERS)}",
                        hint="To audit your own model use `iceaudit audit --classifier PATH --card CARD`.")
    formats = _report_formats(format)
    model, card = demo_classifier(classifier)
    policy_path = shipped_policy(policy)
    load_policy(policy_path)  # a bad policy is bad input before the audit, not after it
    audit_dir = Path(out_dir or f"demo-out/{classifier}")
    result = audit(model, card, generator="demo", n=n, seed=seed, device="cpu", baselines=list(DEFAULT_METHODS),
                   out=audit_dir, command=shlex.join(["iceaudit", *_state.get("argv", sys.argv[1:])]))
    _print_drivers(result)
    with console.status("Building the report…"):
        written = build_report(audit_dir, formats=formats, policy=policy_path)
    for path in written:
        out.print(f"report: {path}", soft_wrap=True, highlight=False)
