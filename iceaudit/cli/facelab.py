"""`iceaudit facelab ...`: the demo world's developer commands (render, train, oracle)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from iceaudit.atomic import write_text
from iceaudit.cli.app import app, console, out
from iceaudit.errors import UserError


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

# Options every training command shares. Trained assets go to --out, never into the installed
# package: refresh the shipped copy in a checkout with `--out iceaudit/facelab/assets`.
ASSETS_OUT = "runs/facelab-assets"
AssetsOut = Annotated[str, typer.Option("--out", help="Directory for the trained net (weights + json); the shipped copy "
                                                      "in a checkout is iceaudit/facelab/assets.")]
Threads = Annotated[int, typer.Option("--threads", min=1, help="torch threads (1 is faster on a busy machine).")]
NTrain = Annotated[int, typer.Option("--n-train", min=64, help="Training renders (drawn once, cached in memory).")]
Steps = Annotated[int, typer.Option("--steps", min=1)]
Batch = Annotated[int, typer.Option("--batch", min=1)]
Seed = Annotated[int, typer.Option("--seed")]


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


def _train_analysis_net(kind: str, steps: int, batch: int, seed: int, run_dir: str, threads: int,
                        n_train: int, out_dir: str) -> None:
    from pathlib import Path

    from iceaudit.facelab.train import analysis

    train = {"landmarks": analysis.train_landmarks, "parser": analysis.train_parser}[kind]
    progress, update = _train_progress(steps, kind)
    with progress:
        meta = train(steps=steps, batch=batch, seed=seed, run_dir=Path(run_dir), progress=update,
                     threads=threads, n_train=n_train, out_dir=Path(out_dir))
    out.print(meta["held_out_renders"])
    out.print(f"wrote {Path(out_dir) / kind}.*")


def _analysis_net_command(kind: str, what: str, default_steps: int, default_batch: int) -> None:
    """Register ``train-<kind>``: the landmark regressor and the parser train the same way."""

    def command(
        steps: Steps = default_steps,
        batch: Batch = default_batch,
        seed: Seed = 0,
        run_dir: str = typer.Option(f"runs/facelab-{kind}", "--run-dir", help="Checkpoints and log (resumes)."),
        threads: Threads = 2,
        n_train: NTrain = 6000,
        out_dir: AssetsOut = ASSETS_OUT,
    ) -> None:
        _train_analysis_net(kind, steps, batch, seed, run_dir, threads, n_train, out_dir)

    command.__doc__ = f"Train the FaceLab {what} on renders; writes OUT/{kind}.*"
    facelab_app.command(f"train-{kind}")(command)


_analysis_net_command("landmarks", "landmark regressor", default_steps=1000, default_batch=32)
_analysis_net_command("parser", "face parser", default_steps=500, default_batch=24)



PLANTED = ("smiling", "smiling_skin_shortcut", "eyeglasses_background_shortcut", "random_init")


@facelab_app.command("train-reader")
def facelab_train_reader(
    steps: Steps = 3000,
    batch: Batch = 64,
    seed: Seed = 0,
    run_dir: str = typer.Option("runs/facelab-reader", "--run-dir", help="Checkpoints and log (resumes)."),
    threads: Threads = 2,
    n_train: NTrain = 20000,
    out_dir: AssetsOut = ASSETS_OUT,
) -> None:
    """Train the FaceLab factor reader (image -> true factors) used to validate banks; writes
    OUT/reader.* with its held-out errors on renders and on demo-generator samples."""
    from pathlib import Path

    from iceaudit.facelab.train.reader import train_reader
    from iceaudit.stylegan2.loaders import load_generator

    progress, update = _train_progress(steps, "reader")
    with progress:
        meta = train_reader(steps=steps, batch=batch, seed=seed, run_dir=Path(run_dir), progress=update,
                            threads=threads, n_train=n_train, generator=load_generator("demo"), out_dir=Path(out_dir))
    for where, errs in meta["held_out"].items():
        out.print(where, {k: v["r2"] for k, v in errs.items()})


@facelab_app.command("evaluate-readers")
def facelab_evaluate_readers(
    assets: str = typer.Option(..., "--assets", help="Directory holding reader.* and *_estimator.* to re-measure and "
                                                    "update (the shipped copy in a checkout: iceaudit/facelab/assets)."),
    generator: str = typer.Option("demo", "--generator", help="Generator whose samples to read."),
) -> None:
    """Re-measure the factor reader's and estimators' accuracy on a generator's samples and
    store it in their json; run after the demo generator changes under trained nets (the
    bank's truth check reports only factors read with R² >= 0.75 there)."""
    from iceaudit.facelab.reader import rescore_on_generator
    from iceaudit.stylegan2.loaders import load_generator

    from pathlib import Path

    for asset, errs in rescore_on_generator(load_generator(generator), directory=Path(assets)).items():
        out.print(asset, {k: v["r2"] for k, v in errs.items()})


@facelab_app.command("train-estimator")
def facelab_train_estimator(
    factor: str = typer.Argument(..., help="The attribute: `age` or `beard` (criteria the demo bank uses)."),
    steps: Steps = 2000,
    batch: Batch = 64,
    seed: int = typer.Option(1, "--seed", help="Not the reader's seed (0): its own training faces."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Checkpoints and log (resumes); default runs/facelab-FACTOR."),
    threads: Threads = 2,
    n_train: NTrain = 20000,
    out_dir: AssetsOut = ASSETS_OUT,
) -> None:
    """Train a FaceLab attribute estimator (image -> one factor), a bank criterion where no parser
    region or landmark set measures the attribute, as a real recipe would use a pretrained age
    estimator or attribute classifier; writes OUT/FACTOR_estimator.*"""
    from pathlib import Path

    from iceaudit.criteria.estimator import FACELAB_ESTIMATORS
    from iceaudit.facelab.train.reader import train_reader
    from iceaudit.stylegan2.loaders import load_generator

    known = {f for _, f in FACELAB_ESTIMATORS.values()}
    if factor not in known:
        raise UserError(f"no FaceLab estimator for {factor!r}", hint="known: " + ", ".join(sorted(known)))
    progress, update = _train_progress(steps, f"{factor} estimator")
    with progress:
        meta = train_reader(steps=steps, batch=batch, seed=seed, run_dir=Path(run_dir or f"runs/facelab-{factor}"),
                            progress=update, threads=threads, n_train=n_train, generator=load_generator("demo"),
                            names=(factor,), width=16, asset=f"{factor}_estimator", out_dir=Path(out_dir))
    for where, errs in meta["held_out"].items():
        out.print(where, {k: v["r2"] for k, v in errs.items()})


@facelab_app.command("train-generator")
def facelab_train_generator(
    steps: int = typer.Option(9000, "--steps", min=1, help="Optimiser steps (batch 32)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights, the training faces and the batch order."),
    dataset_size: int = typer.Option(50_000, "--dataset-size", min=64, help="Pre-rendered training faces (cached in --workdir)."),
    workdir: str = typer.Option("runs/demo-generator", "--workdir", help="Checkpoint, loss log and render cache (resumes)."),
    out_path: str = typer.Option("runs/demo-generator/demo_generator", "--out",
                                 help="Native generator to write (.safetensors + .json); train-knobs then makes the shipped one from it."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop (with a checkpoint) after this long; run again to resume."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 autocast (about 1.6x faster on CPUs with AVX-512 BF16)."),
) -> None:
    """Train the FaceLab demo generator: a StyleGAN2 whose G(z) reproduces render(phi(z)).

    The mapping is first fitted alone so that w holds the factors (a fixed linear readout),
    then both networks train by regression with a part-weighted L1 loss (eyes, brows,
    mouth and glasses weigh more: they cover few pixels). Seeded and resumable; the
    shipped generator starts as `--precision bf16` with the defaults (47 minutes on a 2-core
    CPU, BENCHMARKS.md), then `train-knobs` gives it its style knobs. Writes the same native format real generators
    are converted to, so `load_generator("demo")` takes the ordinary code path.
    """
    from iceaudit.facelab.train.generator import GeneratorTrainConfig, train_and_export

    if precision not in ("fp32", "bf16"):
        raise UserError(f"--precision must be fp32 or bf16, got {precision!r}")
    cfg = GeneratorTrainConfig(steps=steps, seed=seed, dataset_size=dataset_size, threads=threads, max_minutes=max_minutes,
                      precision=precision)
    train_and_export(cfg, workdir, out_path, log=lambda msg: console.print(msg, highlight=False))


@facelab_app.command("train-knobs")
def facelab_train_knobs(
    generator: str = typer.Option("runs/demo-generator/demo_generator.safetensors", "--generator",
                                  help="The generator to tune: train-generator's output (a generator is tuned once)."),
    steps: int = typer.Option(9000, "--steps", min=1, help="Training steps of the synthesis (32 faces each)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the training faces and the batch order."),
    workdir: str = typer.Option("runs/demo-generator", "--workdir", help="Checkpoint and loss log (resumes); reuses train-generator's render cache."),
    out_path: str = typer.Option("runs/demo-generator-knobs/demo_generator", "--out",
                                 help="Native generator to write (.safetensors + .json); the shipped demo generator in a checkout is iceaudit/facelab/assets/demo_generator."),
    knob: list[str] = typer.Option(None, "--knob", metavar="FACTOR=LAYER",
                                   help="A factor and the style layer its knob channel is chosen in, e.g. "
                                        "skin_tone=b16.conv0 (repeat for more). Default: "
                                        "skin_tone=b16.conv0 and bg_brightness=b64.conv0."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads."),
) -> None:
    """Give skin tone and background brightness one style channel each.

    FFHQ StyleGAN2 has single style channels for single attributes (StyleSpace); a
    generator trained by regression spreads every factor over hundreds. This rewires the
    trained demo generator's affine layers so that each knob factor reaches the synthesis
    only through one chosen conv channel, then retrains the synthesis (mapping frozen,
    affines held to the routing) until G(z) reproduces render(phi(z)) again. The other factors stay
    spread out. The knobs are recorded in the generator's metadata (`style_knobs`).

    This is the last step of the shipped demo generator (`make demo-world`): 44 min on 2
    CPU cores, and the result is as faithful as its input (docs/facelab.md, "Style knobs").
    """
    from iceaudit.facelab.factors import FACTOR_NAMES
    from iceaudit.facelab.train.knobs import KNOBS, KnobConfig, tune_and_export

    layers = dict(KNOBS)
    if knob:
        layers = {}
        for item in knob:
            factor, sep, layer = item.partition("=")
            if not sep or not factor.strip() or not layer.strip():
                raise UserError(f"--knob takes FACTOR=LAYER, e.g. skin_tone=b16.conv0; got {item!r}")
            layers[factor.strip()] = layer.strip()
    unknown = [f for f in layers if f not in FACTOR_NAMES]
    if unknown:
        raise UserError(f"--knob: unknown FaceLab factor {', '.join(map(repr, unknown))}",
                        hint="factors: " + ", ".join(FACTOR_NAMES))
    cfg = KnobConfig(steps=steps, seed=seed, threads=threads, knobs=layers)
    tune_and_export(generator, cfg, workdir, out_path, log=lambda msg: console.print(msg, highlight=False))


@facelab_app.command("train-classifiers")
def facelab_train_classifiers(
    names: list[str] = typer.Argument(None, help=f"Which to train (default: all of {', '.join(PLANTED)})."),
    steps: int = typer.Option(400, "--steps", min=1),
    n_train: int = typer.Option(4000, "--n-train", min=64, help="Training renders per classifier."),
    seed: int = typer.Option(0, "--seed"),
    out_dir: str = typer.Option("runs/facelab-classifiers", "--out", help="Where the .pt and .toml files go (the shipped copy in a checkout: examples/facelab)."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads (1 is faster on a busy machine)."),
) -> None:
    """Train the planted classifiers on FaceLab renders; export TorchScript + model cards."""
    import time
    from pathlib import Path

    from iceaudit.audit.classifier import load_card, load_classifier
    from iceaudit.facelab.classifiers import CARDS, TRAINED, accuracy_on_renders, export, train_classifier

    chosen = list(names) if names else list(PLANTED)
    for name in chosen:
        if name not in CARDS:
            raise UserError(f"unknown planted classifier {name!r}", hint="known: " + ", ".join(PLANTED))
    for name in chosen:
        t0 = time.time()
        model = train_classifier(name, steps=steps, n_train=n_train, seed=seed, threads=threads,
                                 log=lambda m: console.print(m, highlight=False))
        training = {"command": f"iceaudit facelab train-classifiers {name} --steps {steps} --n-train {n_train} "
                               f"--seed {seed}" if TRAINED[name] else f"iceaudit facelab train-classifiers {name}",
                    "training data": "FaceLab renders at 64x64 (iceaudit/facelab/classifiers.py:training_factors)",
                    "seconds": round(time.time() - t0, 1)}
        path = export(name, model, Path(out_dir), training)
        if TRAINED[name]:
            clf = load_classifier(path, load_card(path.with_suffix(".toml")), trust=True)  # written just now
            acc = accuracy_on_renders(clf.decision_score, name)
            out.print(f"{name}: accuracy {acc['accuracy']:.3f} on {acc['n']} unconfounded held-out renders")
        else:
            out.print(f"{name}: exported untrained")


def _planted(name: str):
    """A planted classifier by name (examples/facelab/) or a .toml card next to its .pt."""
    from pathlib import Path

    from iceaudit.audit.classifier import load_card, load_classifier
    from iceaudit.facelab.classifiers import EXAMPLES

    card = Path(name) if name.endswith(".toml") else EXAMPLES / f"{name}.toml"
    if not card.is_file():
        raise UserError(f"no classifier card {card}", hint="shipped: " + ", ".join(PLANTED))
    return load_classifier(card.with_suffix(".pt"), load_card(card), trust=True)  # developer command: FaceLab files


@facelab_app.command("oracle")
def facelab_oracle(
    names: list[str] = typer.Argument(..., help=f"Planted classifier names or .toml cards ({', '.join(PLANTED)})."),
    n: int = typer.Option(256, "--n", min=2, help="Faces per factor."),
    step: float = typer.Option(0.25, "--step", help="Step as a share of each factor's range (at most 0.5)."),
    seed: int = typer.Option(0, "--seed"),
    factor: list[str] = typer.Option([], "--factor", help="Only these factors (repeatable)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Also write the tables as JSON."),
    threads: int = typer.Option(2, "--threads", min=1),
) -> None:
    """Ground truth: the effect of moving each true factor alone on a classifier's decision score."""
    import json

    import torch

    from iceaudit.facelab import factors as fl
    from iceaudit.facelab.oracle import as_records, markdown, oracle_many

    torch.set_num_threads(threads)
    chosen = fl.check_names(factor) if factor else None
    clfs = {name: _planted(name) for name in names}
    tables = oracle_many({k: v.decision_score for k, v in clfs.items()}, chosen, n=n, step=step, seed=seed,
                         progress=lambda f: console.print(f"  {f}", highlight=False))
    for name, rows in tables.items():
        out.print(f"\n### {name}  (n={n}, step={step} of each range, seed={seed}; * = CI excludes 0)\n")
        out.print(markdown(rows), highlight=False)
    if json_out:
        write_text(json_out, json.dumps({k: as_records(v) for k, v in tables.items()}, indent=2) + "\n")
        out.print(f"wrote {json_out}")
