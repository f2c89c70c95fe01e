"""Generator commands: `iceaudit info`, `convert`, `generate`."""
from __future__ import annotations

from typing import Optional

import typer

from iceaudit.cli.app import app, console, out
from iceaudit.errors import UserError


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

    from iceaudit.stylegan2.assemble import architecture_of

    G = load_generator(path)
    kw = G.init_kwargs
    family = architecture_of(G)
    # StyleGAN3's constructor takes its synthesis kwargs at the top level
    syn, mkw = kw.get("synthesis_kwargs", kw), kw["mapping_kwargs"]
    if family == "stylegan3":
        family += "-r" if syn.get("conv_kernel", 3) == 1 else "-t"
    layers = G.style_layers
    facts = {
        "path": path,
        "format": G.provenance["format"],
        "family": family,
        "img_resolution": G.img_resolution,
        "img_channels": G.img_channels,
        "z_dim": G.z_dim,
        "w_dim": G.w_dim,
        "c_dim": G.c_dim,
        "num_ws": G.num_ws,
        "mapping_layers": G.mapping.num_layers,
        "mapping_lr_multiplier": float(mkw.get("lr_multiplier", 0.01)),
        "architecture": syn.get("architecture", "skip" if family == "stylegan2" else "alias-free"),
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
    for key in ("format", "family", "img_resolution", "img_channels", "z_dim", "w_dim", "c_dim", "num_ws",
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
