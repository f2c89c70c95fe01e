"""`iceaudit bank ...`: build, list, show, validate and draw subspace banks."""
from __future__ import annotations

from typing import Optional

import typer

from iceaudit.atomic import write_text
from iceaudit.cli.app import app, console, out
from iceaudit.errors import UserError
from iceaudit.resources import bank_dir


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
    from iceaudit.criteria.eyes import load_eyes

    eyes = load_eyes(landmarks, parser, label_order=label_order, fan_size=fan_size, parser_size=parser_size,
                     defaults=rec.eyes)
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

    from iceaudit.bank.build import validate_bank
    from iceaudit.bank.format import save_bank

    b, G = _load_bank_for(bank, generator)
    from iceaudit.criteria.eyes import load_eyes

    eyes = load_eyes(landmarks, parser, label_order=label_order, fan_size=fan_size, parser_size=parser_size,
                     defaults=b.meta.get("eyes_spec", {}))
    with _progress() as bar:
        task = bar.add_task("validating", total=len(b.subspaces))
        reports = validate_bank(G, b, eyes, faces=faces, seed=seed, truth=_truth(truth),
                                progress=lambda n: bar.advance(task, n))
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
    from iceaudit.bank.build import bank_latents
    from iceaudit.bank.sheet import contact_sheet

    b, G = _load_bank_for(bank, generator)
    ws = bank_latents(G, faces, seed)
    with _progress() as bar:
        task = bar.add_task("walking", total=len(b.subspaces))
        contact_sheet(G, b, ws, out_png, steps=steps, cell=cell, progress=lambda n=1: bar.advance(task, n))
    console.print(f"wrote {out_png}")
