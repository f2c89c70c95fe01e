"""`iceaudit bank ...`: build, list, show, validate and draw subspace banks."""
from __future__ import annotations

import re
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
_BUILT_FOR_OPT = typer.Option(None, "--generator", "-g", help="The generator the bank was built for (default: the "
                              "shipped generator whose fingerprint the bank records, e.g. `demo`).")
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
    for col in ("id", "name", "tags", "space", "dim×rank", "method", "own", "leak", "walks", "ok"):
        t.add_column(col)
    for s in bank.subspaces:
        v = s.validation or {}
        own, leak = v.get("own_effect"), v.get("max_leakage")
        t.add_row(s.id, s.name, ", ".join(s.tags), s.space, f"{s.basis.shape[1]}×{s.basis.shape[0]}", s.method,
                  "-" if own is None else f"{own:.2f}", "-" if leak is None else f"{leak:.2f}",
                  "{:+g} .. {:+g}".format(*s.walk_range) + (" (clipped)" if s.walk_range != s.step_range else ""),
                  ("yes" if v.get("passed") else "no" if v else "-") + ("" if s.verified else " (unverified)"))
    out.print(t)


@bank_app.command("list", help="List the subspaces of a bank with their validation figures.")
def bank_list_command(bank: str = _BANK_OPT) -> None:
    from iceaudit.bank.format import load_bank

    _print_bank(load_bank(bank_dir(bank)))


@bank_app.command("show", help="Show one subspace: description, space, unit, step range, valid range, validation.")
def bank_show_command(subspace_id: str = typer.Argument(..., metavar="ID"), bank: str = _BANK_OPT) -> None:
    import json

    from iceaudit.bank.format import load_bank

    s = load_bank(bank_dir(bank))[subspace_id]
    entry = s.manifest_entry()
    for key in ("id", "name", "description", "tags", "space", "layers", "dim", "rank", "method", "criterion",
                "unit", "unit_norm", "step_range", "verified"):
        out.print(f"[bold]{key}[/]: {entry[key]}", highlight=False)
    clipped = "  (audits walk {:+g} .. {:+g})".format(*s.walk_range) if s.walk_range != s.step_range else ""
    valid = entry.get("valid_range", "not measured (iceaudit bank valid-range)")
    out.print(f"[bold]valid_range[/]: {valid}{clipped}", highlight=False)
    out.print("[bold]validation[/]:")
    out.print_json(json.dumps(entry["validation"], default=float))


@bank_app.command("validate", help="Re-run validation of a bank on a generator: own effect per unit, leakage "
                  "onto every other subspace's criterion, pixel drift outside the target region. "
                  "Prints the table and stores validation.json in the bank.")
def bank_validate_command(
    generator: Optional[str] = _BUILT_FOR_OPT,
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


@bank_app.command("valid-range", help="Measure where each walk stays a face and store it as the subspace's valid "
                  "range; audits walk no further.\n\n"
                  "The generator's sampled faces are summarised by a PCA of 16×16 thumbnails; a walked image is off "
                  "the faces when it is more unusual under it than 99 % of other sampled faces. Each side of a walk "
                  "is kept up to the last step at which at most `--max-off-share` of the walked faces are off, and "
                  "each step still moves the subspace's own measure by `--min-response` SD per unit (past \"no "
                  "glasses\" a glasses walk changes something else). `bank build` does this too (recipe keys `manifold_*`); this command measures an existing bank. "
                  "Example: `iceaudit bank valid-range --bank demo`")
def bank_valid_range_command(
    generator: Optional[str] = _BUILT_FOR_OPT,
    bank: str = _BANK_OPT,
    fit_faces: int = typer.Option(640, "--fit-faces", help="Sampled faces the PCA is fitted on."),
    held_out_faces: int = typer.Option(384, "--held-out-faces", help="Other sampled faces: they set the threshold; "
                                       "the first `--walk-faces` of them are walked."),
    walk_faces: int = typer.Option(32, "--walk-faces", help="Faces walked per subspace."),
    max_off_share: float = typer.Option(0.1, "--max-off-share", help="Share of walked faces allowed off the faces at a "
                                        "step that is still valid."),
    seed: int = typer.Option(5, "--seed", help="Seed of the sampled faces."),
    min_response: float = typer.Option(0.25, "--min-response", help="Least change of a subspace's own measure per "
                                       "unit (SDs across faces) at a step that is still valid; 0 turns the response "
                                       "bound off (and the landmark model and parser are then not needed)."),
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help=_LANDMARKS_HELP),
    parser: Optional[str] = typer.Option(None, "--parser", help=_PARSER_HELP),
) -> None:
    import json

    from iceaudit.bank.format import save_bank
    from iceaudit.bank.manifold import settings_from, with_valid_ranges

    settings = settings_from({"manifold_fit_faces": fit_faces, "manifold_held_out_faces": held_out_faces,
                              "manifold_walk_faces": walk_faces, "manifold_max_off_share": max_off_share,
                              "manifold_seed": seed, "manifold_min_response": min_response})
    if walk_faces > held_out_faces:
        raise UserError(f"--walk-faces ({walk_faces}) cannot exceed --held-out-faces ({held_out_faces})")
    b, G = _load_bank_for(bank, generator)
    measures = None
    if min_response > 0:
        from iceaudit.criteria.eyes import load_eyes
        from iceaudit.criteria.spec import Measured

        eyes = load_eyes(landmarks, parser, defaults=b.meta.get("eyes_spec", {}))
        measures = {s.id: Measured(json.loads(s.criterion), eyes) for s in b.subspaces if s.criterion}
    with _progress() as bar:
        task = bar.add_task("walking", total=len(b.subspaces))
        b.subspaces = with_valid_ranges(G, b.subspaces, settings, measures=measures,
                                        progress=lambda n: bar.advance(task, n))
    b.meta["manifold"] = settings.to_json()
    folder = bank_dir(bank)
    save_bank(b, folder)
    path = folder / "validation.json"
    if path.is_file():  # keep validation.json's figures beside the manifest's
        try:
            reports = json.loads(path.read_text())
        except ValueError:
            reports = None
        if isinstance(reports, dict):
            for sub in b.subspaces:
                if isinstance(reports.get(sub.id), dict):
                    reports[sub.id]["manifold"] = sub.validation["manifold"]
            write_text(path, json.dumps(reports, indent=2, default=float) + "\n")
    _print_bank(b)
    for sub in b.subspaces:
        if sub.validation["manifold"]["leaves_at_first_step"]:
            console.print(f"[yellow]leaves the faces at its first step[/] {sub.id}: kept to one step each way", highlight=False)


@bank_app.command("sheet", help="Write a contact sheet PNG: one row of walk frames per subspace.\n\n"
                  "With `--seeds`, write instead a labelling page (HTML) of numbered faces to tick for "
                  "`bank add-concept`: `iceaudit bank sheet --generator demo --seeds 0-199 --out sheet.html`.")
def bank_sheet_command(
    generator: str = typer.Option(..., "--generator", "-g", help="The generator the bank was built for."),
    out_png: str = typer.Option(..., "--out", "-o", help="PNG file to write (an .html page with --seeds)."),
    bank: str = _BANK_OPT,
    faces: int = typer.Option(1, "--faces", help="Faces per row."),
    steps: int = typer.Option(7, "--steps", help="Frames per walk."),
    seed: int = typer.Option(0, "--seed", help="Seed of the faces."),
    cell: int = typer.Option(96, "--cell", help="Pixel size of one frame in the sheet."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Faces to label (e.g. 0-199): writes a labelling "
                                        "page whose button saves seed,label CSV for `bank add-concept --labels`."),
) -> None:
    from iceaudit.bank.build import bank_latents
    from iceaudit.bank.sheet import contact_sheet

    if seeds is not None:
        from iceaudit.bank.concept import labelling_sheet
        from iceaudit.stylegan2.generate import parse_seeds
        from iceaudit.stylegan2.loaders import load_generator

        wanted = parse_seeds(seeds)
        G = load_generator(generator).eval()
        with console.status(f"drawing {len(wanted)} faces"):
            labelling_sheet(G, wanted, out_png, cell=cell)
        console.print(f"wrote {out_png}: tick the faces that show the concept, then save labels.csv")
        return
    b, G = _load_bank_for(bank, generator)
    ws = bank_latents(G, faces, seed)
    with _progress() as bar:
        task = bar.add_task("walking", total=len(b.subspaces))
        contact_sheet(G, b, ws, out_png, steps=steps, cell=cell, progress=lambda n=1: bar.advance(task, n))
    console.print(f"wrote {out_png}")


@bank_app.command("add-concept", help="Add your own concept to a bank, from labelled faces or a scorer.\n\n"
                  "Label generated faces by seed (`bank sheet --seeds 0-199 --out sheet.html` draws them), then "
                  "fit a direction: `svm` (a linear boundary between positives and negatives in W, W+ or S, "
                  "as InterFaceGAN) or `attribute` (the style channels the positives shift most, as StyleSpace). "
                  "Or give no labels and `--method ice --scorer FILE`: the direction that moves the scorer "
                  "while the `--orthogonal-to` subspaces' criteria stay put (ICE). "
                  "It is calibrated (with `--scorer`, one unit = 1 SD of the scorer), validated like every "
                  "subspace (leakage onto the bank's criteria, drift, held-out separation) and appended with "
                  "the examples' and the scorer's hashes.\n\n"
                  "Example: `iceaudit bank add-concept --bank demo --out my_bank --id hat --labels hat.csv "
                  "--orthogonal-to hair_volume`")
def bank_add_concept_command(
    concept_id: Optional[str] = typer.Option(None, "--id", help="Id of the new subspace (letters, digits, _ . -; "
                                             "default: made from --name)."),
    bank: str = _BANK_OPT,
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Bank directory to write (default: the bank itself; "
                                      "required for a shipped bank)."),
    generator: Optional[str] = typer.Option(None, "--generator", "-g", help="The generator the bank was built for "
                                            "(default: the shipped one whose fingerprint the bank records)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="CSV with columns seed,label (1/0, yes/no, pos/neg)."),
    positives: Optional[str] = typer.Option(None, "--positives", help="Seeds showing the concept: a text/CSV file, "
                                            "or a folder of images named by seed (seed0042.png)."),
    negatives: Optional[str] = typer.Option(None, "--negatives", help="Seeds not showing it, the same way."),
    method: str = typer.Option("svm", "--method", help="svm (linear boundary), attribute (StyleSpace channels; "
                               "--space S) or ice (from --scorer alone; labels optional, then only checked)."),
    space: str = typer.Option("W", "--space", help="W, W+ or S."),
    layers: Optional[str] = typer.Option(None, "--layers", help="W+: first,last ws indices; S: style layer names "
                                         "(comma-separated; default all)."),
    orthogonal_to: list[str] = typer.Option([], "--orthogonal-to", help="A bank subspace the concept must not "
                                            "move along (repeatable): conditional editing. With --method ice its "
                                            "criterion is held still instead."),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="Attribute scorer to calibrate on (the criterion "
                                         "of --method ice): a TorchScript image -> score file, or facelab-age / "
                                         "facelab-beard."),
    name: Optional[str] = typer.Option(None, "--name", help="Name a reviewer reads (default: the id); --id or "
                                       "--name is needed."),
    description: str = typer.Option("", "--description", help="What the concept is."),
    tags: list[str] = typer.Option([], "--tag", help="Tag (repeatable), e.g. protected."),
    leakage_exempt: list[str] = typer.Option([], "--leakage-exempt", help="A bank subspace the concept may move "
                                             "(repeatable; needs --reason)."),
    reason: str = typer.Option("", "--reason", help="Why the --leakage-exempt subspaces may move."),
    keep_failing: bool = typer.Option(False, "--keep-failing", help="Add it even when validation fails."),
    replace_existing: bool = typer.Option(False, "--replace", help="Refit a concept of the same id."),
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help=_LANDMARKS_HELP),
    parser: Optional[str] = typer.Option(None, "--parser", help=_PARSER_HELP),
    label_order: Optional[str] = typer.Option(None, "--label-order", help=_ORDER_HELP),
    truth: Optional[str] = typer.Option(None, "--truth", help="`facelab`: check which true factor the concept moves."),
    truth_factor: Optional[str] = typer.Option(None, "--truth-factor", help="With --truth: the factor it must lead."),
) -> None:
    from iceaudit.bank.concept import ConceptSpec, add_concept, read_examples, save_concept_bank
    from iceaudit.criteria.eyes import load_eyes
    from iceaudit.resources import shipped_banks_dir

    if concept_id is None:
        if not name or not name.strip():
            raise UserError("name the concept: --id ID (or --name NAME, from which the id is made)")
        concept_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip().lower()).strip("_.-") or "concept"
    folder = bank_dir(bank)
    if out is None:
        if folder.resolve().is_relative_to(shipped_banks_dir().resolve()):
            raise UserError(f"bank {bank!r} is a shipped bank: write the extended bank elsewhere with --out DIR")
        out = str(folder)
    parts = [p.strip() for p in (layers or "").split(",") if p.strip()]
    if space == "W+" and not all(p.isdigit() for p in parts):
        raise UserError(f"--layers {layers!r}: with --space W+ give the first and last ws index, e.g. 0,5")
    given = labels is not None or positives is not None or negatives is not None
    examples = read_examples(labels=labels, positives=positives, negatives=negatives) \
        if given or method != "ice" else None
    spec = ConceptSpec(id=concept_id, name=name, description=description, tags=list(tags), method=method, space=space,
                       layers=[int(p) for p in parts] if space == "W+" and parts else parts,
                       orthogonal_to=list(orthogonal_to))
    b, G = _load_bank_for(bank, generator)
    eyes = load_eyes(landmarks, parser, label_order=label_order, defaults=b.meta.get("eyes_spec", {}))
    source = f"{len(examples.seeds)} labelled faces" if examples is not None else f"the scorer {scorer}"
    with console.status(f"fitting and validating {concept_id!r} from {source}"):
        new, report = add_concept(G, b, examples, spec, eyes, scorer=scorer, truth=_truth(truth),
                                  truth_factor=truth_factor, leakage_exempt_ids=leakage_exempt, exempt_reason=reason,
                                  keep_failing=keep_failing, replace_existing=replace_existing)
    sep = f"held-out separation {report['separation']['accuracy']:.0%}, " if "separation" in report else ""
    console.print(f"{concept_id}: {sep}max leakage {report['max_leakage']:.2f} SD/unit, "
                  f"drift {report['drift_outside']:.3f}/unit" + (f", moves {report['truth_lead']} most"
                                                                 if "truth_lead" in report else ""), highlight=False)
    if not report["passed"]:
        console.print(f"[yellow]fails[/] {concept_id}: {'; '.join(report['reasons'])}", highlight=False)
        if not keep_failing:
            raise UserError(f"concept {concept_id!r} failed validation; the bank is unchanged",
                            hint="Label more or clearer faces, add --orthogonal-to, or --keep-failing to keep it marked.")
    save_concept_bank(new, out, report, previous=folder)
    console.print(f"added {concept_id!r} to {out} ({len(new.subspaces)} subspaces)")
