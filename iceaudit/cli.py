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

facelab_app = typer.Typer(
    help=(
        "FaceLab, the embedded demo world: procedural faces with known factors, the "
        "face-analysis nets and planted classifiers trained on them, and the ground-truth "
        "oracle that says what a classifier truly depends on."
    ),
    no_args_is_help=True,
)
app.add_typer(facelab_app, name="facelab")


def _parse_factor_options(items: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--factor expects NAME=VALUE, got {item!r}", hint="e.g. --factor smile=0.8")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"factor {name.strip()!r}: {value!r} is not a number") from None
    return values


@facelab_app.command("factors")
def facelab_factors() -> None:
    """List the true factors: name, range, meaning."""
    from iceaudit.facelab.factors import table

    out.print(table(), highlight=False)


@facelab_app.command("render")
def facelab_render(
    out_path: str = typer.Option("facelab.png", "--out", help="PNG contact sheet to write."),
    n: int = typer.Option(16, "--n", min=1, max=1024, help="Number of faces."),
    seed: int = typer.Option(0, "--seed", help="Integer seed of the factor draw."),
    factor: list[str] = typer.Option([], "--factor", help="Pin a factor: NAME=VALUE (repeatable)."),
    resolution: int = typer.Option(128, "--resolution", help="64 or 128."),
    labels: bool = typer.Option(False, "--labels", help="Add part labels and landmarks below the faces."),
) -> None:
    """Render faces from the FaceLab prior (optionally with pinned factors) to a PNG sheet."""
    from iceaudit.facelab.render import render_seed
    from iceaudit.facelab.sheet import save_sheet

    r = render_seed(n, seed, resolution, **_parse_factor_options(factor))
    path = save_sheet(r, out_path, cols=min(8, n), labels=labels)
    out.print(f"wrote {path} ({n} faces, seed {seed})")


def _train_progress(total: int, what: str):
    from rich.progress import Progress

    progress = Progress(console=console, transient=False)
    task = progress.add_task(what, total=total)

    def update(step: int, stats: dict) -> None:
        shown = {k: v for k, v in stats.items() if k not in ("step",)}
        progress.update(task, completed=step, description=f"{what} {shown}")

    return progress, update


@facelab_app.command("train-landmarks")
def facelab_train_landmarks(
    steps: int = typer.Option(1000, "--steps", min=1),
    batch: int = typer.Option(32, "--batch", min=1),
    seed: int = typer.Option(0, "--seed"),
    run_dir: str = typer.Option("runs/facelab-landmarks", "--run-dir", help="Checkpoints and log (resumes)."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads (1 is faster on a busy machine)."),
    n_train: int = typer.Option(6000, "--n-train", min=64, help="Training renders (drawn once, cached in memory)."),
) -> None:
    """Train the FaceLab landmark regressor on renders; writes facelab/assets/landmarks.*"""
    from pathlib import Path

    from iceaudit.facelab.analysis import train_landmarks

    progress, update = _train_progress(steps, "landmarks")
    with progress:
        meta = train_landmarks(steps=steps, batch=batch, seed=seed, run_dir=Path(run_dir), progress=update,
                               threads=threads, n_train=n_train)
    out.print(meta["held_out_renders"])


@facelab_app.command("train-parser")
def facelab_train_parser(
    steps: int = typer.Option(500, "--steps", min=1),
    batch: int = typer.Option(24, "--batch", min=1),
    seed: int = typer.Option(0, "--seed"),
    run_dir: str = typer.Option("runs/facelab-parser", "--run-dir", help="Checkpoints and log (resumes)."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads (1 is faster on a busy machine)."),
    n_train: int = typer.Option(6000, "--n-train", min=64, help="Training renders (drawn once, cached in memory)."),
) -> None:
    """Train the FaceLab face parser on renders; writes facelab/assets/parser.*"""
    from pathlib import Path

    from iceaudit.facelab.analysis import train_parser

    progress, update = _train_progress(steps, "parser")
    with progress:
        meta = train_parser(steps=steps, batch=batch, seed=seed, run_dir=Path(run_dir), progress=update,
                            threads=threads, n_train=n_train)
    out.print(meta["held_out_renders"])



PLANTED = ("smiling", "smiling_skin_shortcut", "eyeglasses_background_shortcut", "random_init")


@facelab_app.command("train-classifiers")
def facelab_train_classifiers(
    names: list[str] = typer.Argument(None, help=f"Which to train (default: all of {', '.join(PLANTED)})."),
    steps: int = typer.Option(400, "--steps", min=1),
    n_train: int = typer.Option(4000, "--n-train", min=64, help="Training renders per classifier."),
    seed: int = typer.Option(0, "--seed"),
    out_dir: str = typer.Option("examples/facelab", "--out", help="Where the .pt and .toml files go."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads (1 is faster on a busy machine)."),
) -> None:
    """Train the planted classifiers on FaceLab renders and export TorchScript + model cards."""
    import time
    from pathlib import Path

    from iceaudit.facelab.classifiers import SPECS, accuracy_on_renders, export, load_planted, train_classifier

    chosen = list(names) if names else list(PLANTED)
    for name in chosen:
        if name not in SPECS:
            raise UserError(f"unknown planted classifier {name!r}", hint="known: " + ", ".join(PLANTED))
    for name in chosen:
        t0 = time.time()
        model = train_classifier(name, steps=steps, n_train=n_train, seed=seed, threads=threads,
                                 log=lambda m: console.print(m, highlight=False))
        trained = SPECS[name].trained
        extra = {
            "command": f"iceaudit facelab train-classifiers {name} --steps {steps} --n-train {n_train} --seed {seed}"
            if trained else f"iceaudit facelab train-classifiers {name} --seed {seed}",
            "data": "FaceLab renders at 64x64, see iceaudit/facelab/classifiers.py:training_factors",
            "steps": steps if trained else 0,
            "seed": seed,
            "seconds": round(time.time() - t0, 1),
        }
        export(name, model, Path(out_dir), extra)
        if trained:
            acc = accuracy_on_renders(load_planted(name, Path(out_dir)), name)
            out.print(f"{name}: held-out accuracy {acc['accuracy']:.3f} on {acc['n']} unconfounded renders")
        else:
            out.print(f"{name}: exported untrained")


@facelab_app.command("oracle")
def facelab_oracle(
    names: list[str] = typer.Argument(..., help=f"Planted classifier names or .toml cards ({', '.join(PLANTED)})."),
    n: int = typer.Option(256, "--n", min=2, help="Faces per factor."),
    step: float = typer.Option(0.25, "--step", help="Step as a share of each factor's range."),
    seed: int = typer.Option(0, "--seed"),
    factor: list[str] = typer.Option([], "--factor", help="Only these factors (repeatable)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Also write the tables as JSON."),
    threads: int = typer.Option(2, "--threads", min=1),
) -> None:
    """Ground truth: the effect of moving each true factor alone on a classifier's decision score."""
    import json
    from pathlib import Path

    import torch

    from iceaudit.facelab import factors as fl
    from iceaudit.facelab.classifiers import load_planted
    from iceaudit.facelab.oracle import as_records, markdown, oracle_many

    torch.set_num_threads(threads)
    chosen = fl.check_names(factor) if factor else None
    clfs = {name: load_planted(name) for name in names}
    tables = oracle_many({k: v.score for k, v in clfs.items()}, chosen, n=n, step=step, seed=seed,
                         progress=lambda f: console.print(f"  {f}", highlight=False))
    for name, rows in tables.items():
        out.print(f"\n### {name}  (n={n}, step={step} of each range, seed={seed}; * = CI excludes 0)\n")
        out.print(markdown(rows), highlight=False)
    if json_out:
        Path(json_out).write_text(json.dumps({k: as_records(v) for k, v in tables.items()}, indent=2) + "\n")
        out.print(f"wrote {json_out}")


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
