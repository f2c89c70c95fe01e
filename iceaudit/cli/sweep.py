"""`iceaudit sweep`: many classifiers, one index."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from iceaudit.cli.app import TRUST_HELP, app, out
from iceaudit.cli.report import _report_formats
from iceaudit.errors import UserError


@app.command("sweep")
def sweep_command(
    classifiers: str = typer.Option(..., "--classifiers", help="A directory of classifier files (each with its card: same name, .toml/.yaml), or a comma-separated list of files."),
    policy: str = typer.Option(..., "--policy", help="Policy TOML, or a shipped policy's name: every model is gated against it."),
    out_dir: str = typer.Option(..., "--out", "-o", help="Sweep directory: one audit directory per model, plus index.html, index.json, junit.xml."),
    generator: str = typer.Option("demo", "--generator", "-g", help="Generator file, or `demo`."),
    bank: Optional[str] = typer.Option(None, "--bank", "-b", help="Subspace bank directory or name (default for `demo`: the shipped demo bank)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="An earlier sweep's directory: each model is also gated against its summary there (BASELINE/<model>/summary.json)."),
    n: Optional[int] = typer.Option(None, "--n", help="Faces per audit (the same faces for every model)."),
    seed: int = typer.Option(0, "--seed", help="First face seed."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    baselines: str = typer.Option("none", "--baselines", help="Attribution baselines per model: none (default, fastest), default, all, or a list."),
    format: str = typer.Option("html", "--format", "-f", help="Report formats per model: html, pdf, both, or `none`."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted sweep in --out: finished audits are reused, interrupted ones resumed."),
    backend: str = typer.Option("local", "--backend", help="local, or ray (one Ray connection for the whole sweep)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --backend ray: `auto` or HOST:PORT."),
    workers: Optional[int] = typer.Option(None, "--workers", help="With --backend ray: number of actors."),
    shard_faces: int = typer.Option(64, "--shard-faces", help="Faces per unit of work."),
    subspaces: Optional[str] = typer.Option(None, "--subspaces", help="Comma-separated subspace ids to audit (default: all)."),
    precision: str = typer.Option("fp32", "--precision", help="Generator and classifier arithmetic: fp32, bf16 or fp16 (autocast; docs/precision.md)."),
    trust_classifier: bool = typer.Option(False, "--trust-classifier", envvar="ICEAUDIT_TRUST_CLASSIFIER", help=TRUST_HELP),
) -> None:
    """Audit many classifiers on the same faces, gate each, write one index: exit 0 when all pass,
    1 when one fails, 2 on bad input (a model that cannot be audited is an error row; the rest still run).

    `iceaudit sweep --classifiers models/ --policy fairness --out runs/sweep-1.3 --baseline runs/sweep-1.2`
    """
    from iceaudit.audit.baselines import parse_methods
    from iceaudit.sweep import find_classifiers, run_sweep

    formats = [] if format.strip().lower() == "none" else _report_formats(format)
    models = find_classifiers(classifiers)
    index = run_sweep(models, policy, out_dir, generator=generator, bank=bank, baseline_dir=baseline, formats=formats,
                      resume=resume, backend=backend, ray_address=ray_address, workers=workers, device=device,
                      trust_classifier=trust_classifier, n=n, seed=seed, baselines=parse_methods(baselines), shard_faces=shard_faces,
                      precision=precision,
                      subspaces=[s.strip() for s in subspaces.split(",") if s.strip()] if subspaces else None)
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"sweep: {len(index.models)} models, policy {Path(index.policy).stem}", title_justify="left")
    for col in ("model", "gate", "top driver", "significant", "failed rules / error"):
        table.add_column(col)
    for m in index.models:
        gate = "[yellow]error[/]" if m.error else ("[green]pass[/]" if m.passed else "[bold red]FAIL[/]")
        table.add_row(escape(m.name), gate, escape(m.top_driver or "–"), escape(", ".join(m.significant) or "none"),
                      escape(m.error or ", ".join(m.failed_rules) or "–"))
    out.print(table)
    out.print(f"wrote {out_dir}/index.html, index.json, junit.xml")
    if index.errors:
        raise UserError(f"{len(index.errors)} of {len(index.models)} models could not be audited: "
                        + "; ".join(f"{m.name}: {m.error}" for m in index.errors))
    if not index.passed:
        raise typer.Exit(1)
