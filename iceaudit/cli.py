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
        out.print_json(json.dumps(facts))
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
                                 on_batch=lambda n: progress.advance(task, n))
    save_png(image_grid(images, cols), target)
    out.print(f"wrote {Path(target)} ({len(seed_list)} faces, {G.img_resolution}×{G.img_resolution}, psi {psi})")


# --- facelab commands ----------------------------------------------------------


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

_BANK_OPT = typer.Option("demo", "--bank", "-b", help="Bank directory, or the name of one under subspace_bank/.")
_LANDMARKS_HELP = ("Landmark model: a face-alignment 2DFAN-4 weights file, `fan` (the face-alignment cache), "
                   "`facelab`, or `none`. Default: the recipe's choice.")
_PARSER_HELP = "Face parser: a BiSeNet CelebAMask-HQ checkpoint, `facelab`, or `none`. Default: the recipe's choice."
_ORDER_HELP = "Label order of the parser checkpoint: bisenet (zllrunning / facexlib BiSeNet), parsenet (facexlib), facer."


def _bank_dir(name: str):
    from pathlib import Path

    p = Path(name)
    if p.is_dir() or p.parent != Path("."):
        return p
    return Path("subspace_bank") / name


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


def _load_bank_for(bank: str, generator: str):
    from iceaudit.bank.format import load_bank
    from iceaudit.stylegan2.loaders import load_generator

    b = load_bank(_bank_dir(bank))
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
                            keep_failing=keep_failing)
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

    _print_bank(load_bank(_bank_dir(bank)))


@bank_app.command("show", help="Show one subspace: description, space, unit, step range, validation.")
def bank_show_command(subspace_id: str = typer.Argument(..., metavar="ID"), bank: str = _BANK_OPT) -> None:
    import json

    from iceaudit.bank.format import load_bank

    s = load_bank(_bank_dir(bank))[subspace_id]
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
    generator: str = typer.Option(..., "--generator", "-g", help="The generator the bank was built for."),
    bank: str = _BANK_OPT,
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help=_LANDMARKS_HELP),
    parser: Optional[str] = typer.Option(None, "--parser", help=_PARSER_HELP),
    label_order: Optional[str] = typer.Option(None, "--label-order", help=_ORDER_HELP),
    parser_size: int = typer.Option(512, "--parser-size", help="Resolution the parser runs at."),
    fan_size: int = typer.Option(256, "--fan-size", help="Crop resolution FAN runs at."),
    faces: int = typer.Option(32, "--faces", help="Validation faces."),
    seed: int = typer.Option(2, "--seed", help="Seed of the validation faces."),
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
    reports = {}
    with _progress() as bar:
        task = bar.add_task("validating", total=len(b.subspaces))
        for i, s in enumerate(b.subspaces):
            if s.id in measures:
                th = Thresholds(**(s.validation or {}).get("thresholds", {}))
                same = [k for k, m in measures.items() if k != s.id and m.spec == measures[s.id].spec]
                rep = validate_subspace(G, s, s.id, measures, ws, thresholds=th, ignore=same)
                reports[s.id] = rep
                b.subspaces[i] = replace(s, validation={**(s.validation or {}), **rep})
            bar.advance(task)
    save_bank(b, _bank_dir(bank))
    (_bank_dir(bank) / "validation.json").write_text(json.dumps(reports, indent=2, default=float) + "\n")
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
