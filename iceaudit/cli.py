"""The `iceaudit` command.

Each command parses its arguments, calls one library function, and prints
what it wrote. Bad input surfaces as `UserError` -> one message, exit 2.
Heavy imports (torch, pandas...) happen inside the commands so that `--help`
is instant.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from iceaudit import __version__
from iceaudit.atomic import write_text
from iceaudit.resources import bank_dir
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

_GENERATOR_FORMATS = (
    "Formats: NVIDIA stylegan2-ada-pytorch / stylegan3 network pickles (`.pkl`, read without "
    "running any code from the file), rosinality stylegan2-pytorch checkpoints (`.pt`), and "
    "iceaudit's native `.safetensors` + `.json` pair. `demo` names the shipped FaceLab generator."
)


@app.command("info", help="Describe a generator: sizes, mapping, style layers and fingerprint.\n\n"
             + _GENERATOR_FORMATS)
def info_command(
    path: str = typer.Argument(..., help="Generator file (.pkl, .pt, .safetensors/.json) or `demo`."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of tables."),
) -> None:
    import json

    from rich.table import Table

    from iceaudit.stylegan2.loaders import load_generator

    G = load_generator(path)
    kw = G.init_kwargs
    syn, mkw = kw["synthesis_kwargs"], kw["mapping_kwargs"]
    layers = G.style_layers
    facts = {
        "path": path,
        "format": G.provenance["format"],
        "img_resolution": G.img_resolution,
        "img_channels": G.img_channels,
        "z_dim": G.z_dim,
        "w_dim": G.w_dim,
        "c_dim": G.c_dim,
        "num_ws": G.num_ws,
        "mapping_layers": G.mapping.num_layers,
        "mapping_lr_multiplier": float(mkw.get("lr_multiplier", 0.01)),
        "architecture": syn.get("architecture", "skip"),
        "channel_base": syn.get("channel_base", 32768),
        "channel_max": syn.get("channel_max", 512),
        "parameters": sum(p.numel() for p in G.parameters()),
        "style_channels": sum(sl.channels for sl in layers),
        "fingerprint": G.fingerprint(),
        "style_layers": [{"name": sl.name, "channels": sl.channels, "ws_index": sl.ws_index} for sl in layers],
        "notes": G.provenance.get("notes", []),
    }
    if as_json:
        typer.echo(json.dumps(facts, indent=2))  # plain: for pipes and CI
        return
    summary = Table(title=f"generator {path}", show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    for key in ("format", "img_resolution", "img_channels", "z_dim", "w_dim", "c_dim", "num_ws",
                "mapping_layers", "mapping_lr_multiplier", "architecture", "channel_base", "channel_max",
                "parameters", "style_channels", "fingerprint"):
        value = facts[key]
        summary.add_row(key.replace("_", " "), f"{value:,}" if key == "parameters" else str(value))
    out.print(summary)
    styles = Table(title="style layers (StyleSpace)", title_justify="left")
    for col in ("layer", "channels", "ws index"):
        styles.add_column(col, justify="left" if col == "layer" else "right")
    for sl in layers:
        styles.add_row(sl.name, str(sl.channels), str(sl.ws_index))
    out.print(styles)
    for note in facts["notes"]:
        out.print(f"[yellow]note:[/] {note}")


@app.command("convert", help="Convert a generator to iceaudit's native format (or to a rosinality .pt).\n\n"
             "DST ending in `.safetensors`, `.json` or no suffix writes the native pair "
             "`DST.safetensors` + `DST.json`; DST ending in `.pt` writes a rosinality checkpoint. "
             "iceaudit never writes pickles. " + _GENERATOR_FORMATS)
def convert_command(
    src: str = typer.Argument(..., help="Generator to read (.pkl, .pt, .safetensors/.json or `demo`)."),
    dst: str = typer.Argument(..., help="Where to write: NAME[.safetensors|.json] (native) or NAME.pt (rosinality)."),
) -> None:
    from pathlib import Path

    from iceaudit.atomic import check_output_path
    from iceaudit.stylegan2.loaders import load_generator, save_native, save_rosinality

    target = Path(dst)
    if target.suffix == ".pkl":
        raise UserError("iceaudit does not write pickles (they can carry code)",
                        hint="Convert to NAME.safetensors (native) or NAME.pt (rosinality).")
    if target.suffix not in ("", ".safetensors", ".json", ".pt"):
        raise UserError(f"cannot tell the output format from {dst!r}",
                        hint="Use NAME.safetensors (native) or NAME.pt (rosinality).")
    check_output_path(target)
    G = load_generator(src)
    if target.suffix == ".pt":
        written = [save_rosinality(G, target)]
    else:
        written = list(save_native(G, target))
    for path in written:
        out.print(f"wrote {path}")
    out.print(f"fingerprint {G.fingerprint()}")


@app.command("generate", help="Generate faces for a list of seeds and write them as one PNG grid.\n\n"
             "Seed s uses z = numpy RandomState(s).randn(1, z_dim), as the official generate.py "
             "does, so seeds name the same faces there and here. " + _GENERATOR_FORMATS)
def generate_command(
    generator: str = typer.Option("demo", "--generator", "-g", help="Generator file or `demo`."),
    seeds: str = typer.Option("0-15", "--seeds", help="Seeds: ranges and lists, e.g. 0-15 or 0-3,7,42."),
    psi: float = typer.Option(0.7, "--psi", help="Truncation psi (1 = none; smaller = closer to the average face)."),
    out_path: str = typer.Option("grid.png", "--out", "-o", help="PNG file to write (its directory must exist)."),
    device: str = typer.Option("auto", "--device", help="auto (GPU when available), cpu or cuda."),
    noise_mode: str = typer.Option("const", "--noise-mode", help="const (reproducible), random or none."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images per forward pass."),
    cols: Optional[int] = typer.Option(None, "--cols", min=1, help="Grid columns (default: square-ish)."),
    class_idx: Optional[int] = typer.Option(None, "--class-idx", help="Class label, for conditional generators only."),
) -> None:
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from iceaudit.atomic import check_output_path
    from iceaudit.stylegan2.generate import generate_images, image_grid, parse_seeds, save_png
    from iceaudit.stylegan2.loaders import load_generator

    seed_list = parse_seeds(seeds)
    target = check_output_path(out_path)
    if target.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, got {out_path!r}")
    if noise_mode not in ("const", "random", "none"):
        raise UserError(f"--noise-mode must be const, random or none, got {noise_mode!r}")
    G = load_generator(generator, device=device)
    with Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("faces", total=len(seed_list))
        images = generate_images(G, seed_list, psi=psi, noise_mode=noise_mode, batch_size=batch_size,
                                 class_idx=class_idx, on_batch=lambda n: progress.advance(task, n))
    save_png(image_grid(images, cols), target)
    out.print(f"wrote {Path(target)} ({len(seed_list)} faces, {G.img_resolution}×{G.img_resolution}, psi {psi})")


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


def _train_analysis_net(kind: str, steps: int, batch: int, seed: int, run_dir: str, threads: int,
                        n_train: int) -> None:
    from pathlib import Path

    from iceaudit.facelab import analysis

    train = {"landmarks": analysis.train_landmarks, "parser": analysis.train_parser}[kind]
    progress, update = _train_progress(steps, kind)
    with progress:
        meta = train(steps=steps, batch=batch, seed=seed, run_dir=Path(run_dir), progress=update,
                     threads=threads, n_train=n_train)
    out.print(meta["held_out_renders"])


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
    _train_analysis_net("landmarks", steps, batch, seed, run_dir, threads, n_train)


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
    _train_analysis_net("parser", steps, batch, seed, run_dir, threads, n_train)



PLANTED = ("smiling", "smiling_skin_shortcut", "eyeglasses_background_shortcut", "random_init")


@facelab_app.command("train-reader")
def facelab_train_reader(
    steps: int = typer.Option(3000, "--steps", min=1),
    batch: int = typer.Option(64, "--batch", min=1),
    seed: int = typer.Option(0, "--seed"),
    run_dir: str = typer.Option("runs/facelab-reader", "--run-dir", help="Checkpoints and log (resumes)."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads (1 is faster on a busy machine)."),
    n_train: int = typer.Option(20000, "--n-train", min=64, help="Training renders (drawn once, cached in memory)."),
) -> None:
    """Train the FaceLab factor reader (image -> true factors) used to validate banks; writes
    facelab/assets/reader.* with its held-out errors on renders and on demo-generator samples."""
    from pathlib import Path

    from iceaudit.facelab.reader import train_reader
    from iceaudit.stylegan2.loaders import load_generator

    progress, update = _train_progress(steps, "reader")
    with progress:
        meta = train_reader(steps=steps, batch=batch, seed=seed, run_dir=Path(run_dir), progress=update,
                            threads=threads, n_train=n_train, generator=load_generator("demo"))
    for where, errs in meta["held_out"].items():
        out.print(where, {k: v["r2"] for k, v in errs.items()})


@facelab_app.command("evaluate-readers")
def facelab_evaluate_readers(
    generator: str = typer.Option("demo", "--generator", help="Generator whose samples to read."),
) -> None:
    """Re-measure the factor reader's and estimators' accuracy on a generator's samples and
    store it in their json; run after the demo generator changes under trained nets (the
    bank's truth check reports only factors read with R² >= 0.75 there)."""
    from iceaudit.facelab.reader import rescore_on_generator
    from iceaudit.stylegan2.loaders import load_generator

    for asset, errs in rescore_on_generator(load_generator(generator)).items():
        out.print(asset, {k: v["r2"] for k, v in errs.items()})


@facelab_app.command("train-estimator")
def facelab_train_estimator(
    factor: str = typer.Argument(..., help="The attribute: `age` or `beard` (criteria the demo bank uses)."),
    steps: int = typer.Option(2000, "--steps", min=1),
    batch: int = typer.Option(64, "--batch", min=1),
    seed: int = typer.Option(1, "--seed", help="Not the reader's seed (0): its own training faces."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Checkpoints and log (resumes); default runs/facelab-FACTOR."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads (1 is faster on a busy machine)."),
    n_train: int = typer.Option(20000, "--n-train", min=64, help="Training renders (drawn once, cached in memory)."),
) -> None:
    """Train a FaceLab attribute estimator (image -> one factor), a bank criterion where no parser
    region or landmark set measures the attribute, as a real recipe would use a pretrained age
    estimator or attribute classifier; writes facelab/assets/FACTOR_estimator.*"""
    from pathlib import Path

    from iceaudit.criteria.estimator import FACELAB_ESTIMATORS
    from iceaudit.facelab.reader import train_reader
    from iceaudit.stylegan2.loaders import load_generator

    known = {f for _, f in FACELAB_ESTIMATORS.values()}
    if factor not in known:
        raise UserError(f"no FaceLab estimator for {factor!r}", hint="known: " + ", ".join(sorted(known)))
    progress, update = _train_progress(steps, f"{factor} estimator")
    with progress:
        meta = train_reader(steps=steps, batch=batch, seed=seed, run_dir=Path(run_dir or f"runs/facelab-{factor}"),
                            progress=update, threads=threads, n_train=n_train, generator=load_generator("demo"),
                            names=(factor,), width=16, asset=f"{factor}_estimator")
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
    from iceaudit.facelab.train_generator import TrainConfig, train_and_export

    if precision not in ("fp32", "bf16"):
        raise UserError(f"--precision must be fp32 or bf16, got {precision!r}")
    cfg = TrainConfig(steps=steps, seed=seed, dataset_size=dataset_size, threads=threads, max_minutes=max_minutes,
                      precision=precision)
    train_and_export(cfg, workdir, out_path, log=lambda msg: console.print(msg, highlight=False))


@facelab_app.command("train-knobs")
def facelab_train_knobs(
    generator: str = typer.Option("runs/demo-generator/demo_generator.safetensors", "--generator",
                                  help="The generator to tune: train-generator's output (a generator is tuned once)."),
    steps: int = typer.Option(9000, "--steps", min=1, help="Training steps of the synthesis (32 faces each)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the training faces and the batch order."),
    workdir: str = typer.Option("runs/demo-generator", "--workdir", help="Checkpoint and loss log (resumes); reuses train-generator's render cache."),
    out_path: str = typer.Option("iceaudit/facelab/assets/demo_generator", "--out",
                                 help="Native generator to write (.safetensors + .json): the shipped demo generator by default."),
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
    from iceaudit.facelab.knobs import KNOBS, KnobConfig, tune_and_export

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
    out_dir: str = typer.Option("examples/facelab", "--out", help="Where the .pt and .toml files go."),
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


# --- bank commands -------------------------------------------------------------

bank_app = typer.Typer(
    help=(
        "The subspace bank: named, validated latent directions (skin tone, smile, glasses, ...) "
        "an audit walks along.\n\n"
        "`build` discovers them for a generator from a recipe (ICE, StyleSpace, correlation "
        "analysis, literature channels), calibrates one unit to a stated change of each "
        "subspace's criterion and keeps only those that pass validation. `list`, `show`, "
        "`validate` and `sheet` inspect a built bank. A bank belongs to one generator "
        "(its fingerprint); using it with another is refused."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(bank_app, name="bank")

_BANK_OPT = typer.Option("demo", "--bank", "-b", help="Bank directory, or a bank's name: one under ./subspace_bank/, or a shipped one (`demo`).")
_LANDMARKS_HELP = ("Landmark model: a face-alignment 2DFAN-4 weights file, `fan` (the face-alignment cache), "
                   "`facelab`, or `none`. Default: the recipe's choice.")
_PARSER_HELP = "Face parser: a BiSeNet CelebAMask-HQ checkpoint, `facelab`, or `none`. Default: the recipe's choice."
_ORDER_HELP = "Label order of the parser checkpoint: bisenet (zllrunning / facexlib BiSeNet), parsenet (facexlib), facer."


def _progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)


def _reporter(bar):
    from iceaudit.bank.build import Progress as _P

    class Rich(_P):
        def stage(self, label, total):
            task = bar.add_task(label, total=total)
            return lambda n=1: bar.advance(task, n)

        def note(self, message):
            console.print(message)

    return Rich()


def _eyes(recipe_eyes: dict, landmarks, parser, label_order, parser_size: int, fan_size: int):
    from iceaudit.criteria.base import Eyes
    from iceaudit.criteria.eyes import FACELAB_NAMES, facelab_landmarks, facelab_parser

    lm = landmarks if landmarks is not None else recipe_eyes.get("landmarks")
    ps = parser if parser is not None else recipe_eyes.get("parser")
    order = label_order or recipe_eyes.get("label_order", "bisenet")
    lm_model = ps_model = None
    if lm not in (None, "", "none"):
        if lm in FACELAB_NAMES:
            lm_model = facelab_landmarks()
        else:
            from iceaudit.criteria.fan import FanLandmarks

            lm_model = FanLandmarks.from_file(None if lm == "fan" else lm, size=fan_size)
    if ps not in (None, "", "none"):
        if ps in FACELAB_NAMES:
            ps_model = facelab_parser()
        elif ps == "bisenet":
            raise UserError("this recipe needs a BiSeNet face parser checkpoint", hint="Pass it with --parser PATH.")
        else:
            from iceaudit.criteria.bisenet import BiSeNetParser

            ps_model = BiSeNetParser.from_file(ps, order=order, size=parser_size)
    return Eyes(landmarks=lm_model, parser=ps_model)


def _truth(name: str | None):
    if name in (None, "", "none"):
        return None
    if name != "facelab":
        raise UserError(f"unknown --truth {name!r}", hint="the only ground-truth reader is `facelab` (FaceLab's factor reader)")
    from iceaudit.facelab.reader import FactorTruth

    return FactorTruth()


def _load_bank_for(bank: str, generator: str | None):
    """The bank and its generator; without `generator`, the shipped one whose fingerprint the bank records."""
    from iceaudit.bank.format import load_bank
    from iceaudit.stylegan2.loaders import load_generator, shipped_generator_for

    b = load_bank(bank_dir(bank))
    if generator is None:
        generator = shipped_generator_for(b.generator_fingerprint)
        if generator is None:
            raise UserError(f"bank {bank!r} was built for generator {b.generator_fingerprint[:16]}…, "
                            "which is not one iceaudit ships", hint="Pass the generator it was built for: --generator FILE.")
        console.print(f"using generator {generator!r} (fingerprint {b.generator_fingerprint[:16]}…), "
                      f"the one bank {bank!r} records")
    G = load_generator(generator)
    b.check_generator(G.fingerprint())
    return b, G


@bank_app.command("build", help="Discover, calibrate and validate the subspaces of a recipe for a generator.\n\n"
                  "Shipped recipes: `facelab` (demo generator), `ffhq` (ICE subspaces for FFHQ StyleGAN2), "
                  "`ffhq-stylespace` (published StyleSpace channels, unverified until validated). "
                  "Example: `iceaudit bank build --generator ffhq.pkl --recipe ffhq --landmarks fan "
                  "--parser 79999_iter.pth --out subspace_bank/ffhq-config-f`")
def bank_build_command(
    generator: str = typer.Option(..., "--generator", "-g", help="Generator file or `demo`."),
    recipe: str = typer.Option(..., "--recipe", "-r", help="Recipe TOML file or shipped recipe name."),
    out: str = typer.Option(..., "--out", "-o", help="Bank directory to write (manifest.json, bases.safetensors, validation.json)."),
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help=_LANDMARKS_HELP),
    parser: Optional[str] = typer.Option(None, "--parser", help=_PARSER_HELP),
    label_order: Optional[str] = typer.Option(None, "--label-order", help=_ORDER_HELP),
    parser_size: int = typer.Option(512, "--parser-size", help="Resolution the parser runs at (512 for 79999_iter.pth)."),
    fan_size: int = typer.Option(256, "--fan-size", help="Crop resolution FAN runs at (256 for 2DFAN-4)."),
    faces: Optional[int] = typer.Option(None, "--faces", help="Faces JᵀJ is averaged over (default: the recipe's)."),
    cache: Optional[str] = typer.Option(None, "--cache", help="Directory to cache JᵀJ in (reused by later builds)."),
    keep_failing: bool = typer.Option(False, "--keep-failing", help="Also write subspaces that fail validation."),
    truth: Optional[str] = typer.Option(None, "--truth", help="Ground-truth reader for the true-factor confusion matrix: "
                                        "`facelab` (FaceLab's factor reader; demo generator only). Real generators have none."),
) -> None:
    import torch

    from iceaudit.bank.build import build_bank
    from iceaudit.bank.recipe import load_recipe
    from iceaudit.stylegan2.loaders import load_generator

    rec = load_recipe(recipe)
    G = load_generator(generator).eval()
    eyes = _eyes(rec.eyes, landmarks, parser, label_order, parser_size, fan_size)
    torch.set_grad_enabled(True)
    with _progress() as bar:
        result = build_bank(G, rec, eyes, out=out, cache_dir=cache, progress=_reporter(bar), faces=faces,
                            keep_failing=keep_failing, truth=_truth(truth))
    _print_bank(result.bank)
    for sid, reasons in result.rejected.items():
        console.print(f"[yellow]not shipped[/] {sid}: {'; '.join(reasons)}", highlight=False)
    for sid, why in result.skipped.items():
        console.print(f"[yellow]skipped[/] {sid}: {why}", highlight=False)
    console.print(f"wrote {len(result.bank.subspaces)} subspaces to {out}")


def _print_bank(bank) -> None:
    from rich.table import Table

    t = Table(title=f"bank {bank.name} (generator {bank.generator_fingerprint[:12]}…)", title_justify="left")
    for col in ("id", "name", "tags", "space", "dim×rank", "method", "own", "leak", "ok"):
        t.add_column(col)
    for s in bank.subspaces:
        v = s.validation or {}
        own, leak = v.get("own_effect"), v.get("max_leakage")
        t.add_row(s.id, s.name, ", ".join(s.tags), s.space, f"{s.basis.shape[1]}×{s.basis.shape[0]}", s.method,
                  "-" if own is None else f"{own:.2f}", "-" if leak is None else f"{leak:.2f}",
                  ("yes" if v.get("passed") else "no" if v else "-") + ("" if s.verified else " (unverified)"))
    out.print(t)


@bank_app.command("list", help="List the subspaces of a bank with their validation figures.")
def bank_list_command(bank: str = _BANK_OPT) -> None:
    from iceaudit.bank.format import load_bank

    _print_bank(load_bank(bank_dir(bank)))


@bank_app.command("show", help="Show one subspace: description, space, unit, step range, validation.")
def bank_show_command(subspace_id: str = typer.Argument(..., metavar="ID"), bank: str = _BANK_OPT) -> None:
    import json

    from iceaudit.bank.format import load_bank

    s = load_bank(bank_dir(bank))[subspace_id]
    entry = s.manifest_entry()
    for key in ("id", "name", "description", "tags", "space", "layers", "dim", "rank", "method", "criterion",
                "unit", "unit_norm", "step_range", "verified"):
        out.print(f"[bold]{key}[/]: {entry[key]}", highlight=False)
    out.print("[bold]validation[/]:")
    out.print_json(json.dumps(entry["validation"], default=float))


@bank_app.command("validate", help="Re-run validation of a bank on a generator: own effect per unit, leakage "
                  "onto every other subspace's criterion, pixel drift outside the target region. "
                  "Prints the table and stores validation.json in the bank.")
def bank_validate_command(
    generator: Optional[str] = typer.Option(None, "--generator", "-g", help="The generator the bank was built for "
                                            "(default: the shipped generator whose fingerprint the bank records, e.g. `demo`)."),
    bank: str = _BANK_OPT,
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help=_LANDMARKS_HELP),
    parser: Optional[str] = typer.Option(None, "--parser", help=_PARSER_HELP),
    label_order: Optional[str] = typer.Option(None, "--label-order", help=_ORDER_HELP),
    parser_size: int = typer.Option(512, "--parser-size", help="Resolution the parser runs at."),
    fan_size: int = typer.Option(256, "--fan-size", help="Crop resolution FAN runs at."),
    faces: int = typer.Option(32, "--faces", help="Validation faces."),
    seed: int = typer.Option(2, "--seed", help="Seed of the validation faces."),
    truth: Optional[str] = typer.Option(None, "--truth", help="Ground-truth reader for the true-factor confusion matrix: "
                                        "`facelab` (FaceLab's factor reader; demo generator only). Real generators have none."),
) -> None:
    import json
    from dataclasses import replace

    from iceaudit.bank.build import sample_faces
    from iceaudit.bank.format import save_bank
    from iceaudit.bank.validate import Thresholds, validate_subspace
    from iceaudit.criteria.spec import Measured

    b, G = _load_bank_for(bank, generator)
    eyes_spec = b.meta.get("eyes_spec", {})
    eyes = _eyes(eyes_spec, landmarks, parser, label_order, parser_size, fan_size)
    from iceaudit.criteria.base import memoize

    eyes = memoize(eyes)
    measures = {s.id: Measured(json.loads(s.criterion), eyes) for s in b.subspaces if s.criterion}
    ws = sample_faces(G, faces, seed)
    hook = _truth(truth)
    reports = {}
    with _progress() as bar:
        task = bar.add_task("validating", total=len(b.subspaces))
        for i, s in enumerate(b.subspaces):
            if s.id in measures:
                th = Thresholds(**(s.validation or {}).get("thresholds", {}))
                same = [k for k, m in measures.items() if k != s.id and m.spec == measures[s.id].spec]
                same += list((s.validation or {}).get("leakage_unchecked", {}))
                rep = validate_subspace(G, s, s.id, measures, ws, thresholds=th, ignore=same, truth=hook,
                                        truth_factor=(s.validation or {}).get("truth_factor"))
                reports[s.id] = rep
                b.subspaces[i] = replace(s, validation={**(s.validation or {}), **rep})
            bar.advance(task)
    folder = bank_dir(bank)
    save_bank(b, folder)
    write_text(folder / "validation.json", json.dumps(reports, indent=2, default=float) + "\n")
    _print_bank(b)
    failed = [k for k, r in reports.items() if not r["passed"]]
    for k in failed:
        console.print(f"[yellow]fails[/] {k}: {'; '.join(reports[k]['reasons'])}", highlight=False)


@bank_app.command("sheet", help="Write a contact sheet PNG: one row of walk frames per subspace.")
def bank_sheet_command(
    generator: str = typer.Option(..., "--generator", "-g", help="The generator the bank was built for."),
    out_png: str = typer.Option(..., "--out", "-o", help="PNG file to write."),
    bank: str = _BANK_OPT,
    faces: int = typer.Option(1, "--faces", help="Faces per row."),
    steps: int = typer.Option(7, "--steps", help="Frames per walk."),
    seed: int = typer.Option(0, "--seed", help="Seed of the faces."),
    cell: int = typer.Option(96, "--cell", help="Pixel size of one frame in the sheet."),
) -> None:
    from iceaudit.bank.build import sample_faces
    from iceaudit.bank.sheet import contact_sheet

    b, G = _load_bank_for(bank, generator)
    ws = sample_faces(G, faces, seed)
    with _progress() as bar:
        task = bar.add_task("walking", total=len(b.subspaces))
        contact_sheet(G, b, ws, out_png, steps=steps, cell=cell, progress=lambda n=1: bar.advance(task, n))
    console.print(f"wrote {out_png}")



TRUST_HELP = ("Run a TorchScript classifier file (it carries code that runs on load and on every batch) and accept "
              "any factory callable: only for models whose source you trust. ONNX and state dict + --factory "
              "need no trust (docs/security.md).")


# --- audit command -------------------------------------------------------------


@app.command("audit")
def audit_command(
    classifier: str = typer.Option(..., "--classifier", "-c", help="A .onnx file, a state dict (with --factory), or a TorchScript file (with --trust-classifier)."),
    out_dir: str = typer.Option(..., "--out", "-o", help="Audit directory to write (new or empty; with --resume: the interrupted one)."),
    card: Optional[str] = typer.Option(None, "--card", help="Model card (TOML or YAML): preprocessing, output head, threshold. Flags below override it."),
    generator: str = typer.Option("demo", "--generator", "-g", help="Generator file, or `demo` for the shipped FaceLab generator."),
    bank: Optional[str] = typer.Option(None, "--bank", "-b", help="Subspace bank directory, or a bank's name: one under ./subspace_bank/, or a shipped one (default for `demo`: the shipped demo bank)."),
    n: Optional[int] = typer.Option(None, "--n", help="Number of faces (default: 256 on CUDA, 64 on CPU)."),
    seed: int = typer.Option(0, "--seed", help="First face seed; faces use seeds SEED..SEED+N-1 (z = RandomState(seed).randn)."),
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi (1 = the generator's full distribution)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted audit in --out (same inputs and options)."),
    steps: int = typer.Option(9, "--steps", help="Walk grid points over each subspace's calibrated step range."),
    null: int = typer.Option(8, "--null", help="Random directions per subspace (the null floor)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Images per batch (default: by device and resolution)."),
    subspaces: Optional[str] = typer.Option(None, "--subspaces", help="Comma-separated subspace ids to audit (default: all)."),
    sanity: bool = typer.Option(False, "--sanity", help="Also audit the classifier with re-initialised weights: it should show no driver (doubles the time)."),
    baselines: str = typer.Option("default", "--baselines", help="Captum pixel attributions, latent attribution and AttFind beside the walks: `none`, `default`, `all` or a comma-separated list (see docs/baselines.md)."),
    parser: Optional[str] = typer.Option(None, "--parser", help="Face parser for region-level baselines: a BiSeNet checkpoint, or `facelab` (default with the demo generator)."),
    parser_labels: str = typer.Option("bisenet", "--parser-labels", help="Label order of a BiSeNet checkpoint: bisenet (zllrunning/facexlib), parsenet (facexlib) or facer."),
    factory: Optional[str] = typer.Option(None, "--factory", help="The network for a state dict: package.module:Class from an installed package (an nn.Module class, or a function annotated -> nn.Module), or path/to/nets.py:Class."),
    name: Optional[str] = typer.Option(None, "--name", help="Card: classifier name shown in the report."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="Card: model input size, N or HxW (default: generator resolution)."),
    crop: Optional[str] = typer.Option(None, "--crop", help="Card: ffhq (full aligned face), celeba (central 80% square) or none."),
    value_range: Optional[str] = typer.Option(None, "--value-range", help="Card: 0,1 | -1,1 | 0,255."),
    mean: Optional[str] = typer.Option(None, "--mean", help="Card: per-channel mean, e.g. 0.485,0.456,0.406."),
    std: Optional[str] = typer.Option(None, "--std", help="Card: per-channel std."),
    channel_order: Optional[str] = typer.Option(None, "--channel-order", help="Card: RGB or BGR."),
    head: Optional[str] = typer.Option(None, "--head", help="Card: logit | softmax | sigmoid."),
    index: Optional[int] = typer.Option(None, "--index", help="Card: logit index / softmax class / sigmoid unit."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Card: decision threshold (score > threshold = positive)."),
    positive_class: Optional[str] = typer.Option(None, "--positive-class", help="Card: name of the positive class."),
    backend: str = typer.Option("local", "--backend", help="Where the walks run: `local` (this process) or `ray` (Ray actors: one per GPU, or per CPU; same numbers). Needs `pip install 'iceaudit[ray]'`."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --backend ray: `auto` or HOST:PORT of a running cluster (`ray start --head`); default: start a local Ray instance."),
    workers: Optional[int] = typer.Option(None, "--workers", help="With --backend ray: number of actors (default: the cluster's GPUs, or its CPUs)."),
    shard_faces: int = typer.Option(64, "--shard-faces", help="Faces per unit of work (a unit walks one subspace for a shard of faces); smaller units spread better over workers."),
    trust_classifier: bool = typer.Option(False, "--trust-classifier", envvar="ICEAUDIT_TRUST_CLASSIFIER", help=TRUST_HELP),
) -> None:
    """Audit a classifier: which interpretable subspaces move its decision, with evidence.

    Samples N faces, walks every subspace of the bank over its calibrated step range
    (re-running only the generator layers after the edit), compares each with random
    directions (the null floor), finds the smallest decision-flipping edits, and writes
    AUDIT_DIR/summary.json, results.parquet and images/. Example:

    `iceaudit audit --classifier smile.pt --card smile.toml --out runs/audit-1`
    """
    import shlex

    from iceaudit.api import audit
    from iceaudit.audit.baselines import parse_methods
    from iceaudit.audit.classifier import load_card

    methods = parse_methods(baselines)
    size = None
    if input_size is not None:
        try:
            size = [int(v) for v in input_size.lower().replace("x", ",").split(",")]
        except ValueError:
            raise UserError(f"--input-size must be N or HxW, got {input_size!r}") from None
        size = size[0] if len(size) == 1 else size
    model_card = load_card(card, name=name, input_size=size, crop=crop, value_range=value_range, mean=mean, std=std,
                           channel_order=channel_order, head=head, index=index, threshold=threshold,
                           positive_class=positive_class, factory=factory)
    if classifier.lower().endswith(".onnx"):
        console.print("[yellow]note:[/] ONNX classifier: no gradients, so gradient-based baselines will be skipped.")
    result = audit(
        classifier, model_card, generator=generator, bank=bank, n=n, seed=seed, device=device, baselines=methods,
        out=out_dir, parser=parser, parser_labels=parser_labels, card_path=card, psi=psi, n_steps=steps,
        n_null=null, batch_images=batch, resume=resume, sanity=sanity, backend=backend, ray_address=ray_address,
        workers=workers, shard_faces=shard_faces, trust_classifier=trust_classifier,
        subspaces=[s.strip() for s in subspaces.split(",") if s.strip()] if subspaces else None,
        command=shlex.join(["iceaudit", *_state.get("argv", sys.argv[1:])]),
    )
    _print_drivers(result)


def _print_drivers(result) -> None:
    """The ranked drivers of an `iceaudit.api.Audit`, as a table, then the verdict."""
    from rich.table import Table

    table = Table(title=f"drivers of {result.summary['classifier']['name']}", title_justify="left")
    for col in ("rank", "subspace", "slope / unit", "95% CI", "flip rate", "p (Holm)", "significant"):
        table.add_column(col, justify="left" if col in ("subspace", "significant") else "right")
    for d in result.summary["drivers"]:
        table.add_row(str(d["rank"]), d["name"], f"{d['slope']:+.4f}", f"{d['ci_low']:+.4f} .. {d['ci_high']:+.4f}",
                      f"{100 * d['flip_rate']:.0f}%", f"{d['p_adjusted']:.3g}",
                      "[bold green]yes[/]" if d["significant"] else "no")
    out.print(table)
    out.print(result.verdict)
    out.print(f"wrote {result.dir}/summary.json, results.parquet, images/")



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
    from iceaudit.compare import diff, diff_html
    from iceaudit.summary import load_summary

    for target in (json_out, html_out):
        if target:
            check_output_path(target)

    d = diff(load_summary(new), load_summary(old))
    if not d.comparable and not allow_incomparable:
        raise UserError(f"{old} and {new} are not comparable: " + "; ".join(d.differences_text()),
                        hint="Audit both with the same generator, bank and step grid, or pass --allow-incomparable.")
    table = Table(title=escape(f"{old} → {new}"), title_justify="left")
    for col in ("subspace", "slope, baseline [95% CI]", "slope, new [95% CI]", "|slope| change", "flip rate", "significance"):
        table.add_column(col, justify="left" if col in ("subspace", "significance") else "right")
    for c in d.changes:
        def ci(r):
            return f"{r['slope']:+.3g} [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]"
        table.add_row(escape(c.name + (" (protected)" if c.protected else "")), ci(c.old), ci(c.new),
                      f"{c.abs_slope_increase:+.3g}", f"{100 * c.old['flip_rate']:.0f}% → {100 * c.new['flip_rate']:.0f}%",
                      c.significance)
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
