"""`iceaudit audit`: audit one classifier."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from iceaudit.cli.app import TRUST_HELP, app, console, out, _state
from iceaudit.errors import UserError


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
    precision: str = typer.Option("fp32", "--precision", help="Generator and classifier arithmetic: fp32, or autocast in bf16 / fp16 (faster on GPUs; measured parity in docs/precision.md)."),
    compile_: bool = typer.Option(False, "--compile", help="Run the generator's synthesis (the partial synthesis of the walks included) and the classifier through torch.compile: the same scores within float rounding, faster once compiled, after a compile of seconds to minutes per new start layer and batch shape (worth it on a GPU and for long audits; measured in BENCHMARKS.md). Calls with gradients (the baselines) stay eager. If compiling fails (no C compiler, an unsupported operation) the audit goes on eager after one warning line; summary.json records whether compiled code ran (provenance.execution.compile)."),
    memory_format: str = typer.Option("auto", "--memory-format", help="The classifier's memory format: auto (channels_last on CUDA, contiguous on CPU, where each measured faster), channels_last or contiguous. The scores do not depend on it."),
    subspaces: Optional[str] = typer.Option(None, "--subspaces", help="Comma-separated subspace ids to audit (default: all)."),
    sanity: bool = typer.Option(False, "--sanity", help="Also audit the classifier with re-initialised weights: it should show no driver (doubles the time)."),
    own_units: bool = typer.Option(True, "--own-units/--no-own-units", help="Measure each walk's own criterion (the parser region, landmarks or estimator its unit is calibrated on) at the audited faces, so summary.json and the report say how far one unit really moves it here (1.0 = as the bank calibrated). Needs the bank's landmark detector and parser on this machine; without them the bank's build-time figures are kept and the run says so."),
    baselines: str = typer.Option("default", "--baselines", help="Captum pixel attributions, latent attribution, AttFind and TCAV beside the walks: `none`, `default`, `all` or a comma-separated list (see docs/baselines.md)."),
    tcav_layer: Optional[str] = typer.Option(None, "--tcav-layer", help="The classifier layer TCAV reads (a module "
                                             "name such as `layer4`; default: its last Conv2d). Python modules only."),
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
        n_null=null, batch_images=batch, tcav_layer=tcav_layer, precision=precision, compile=compile_,
        memory_format=memory_format, resume=resume, sanity=sanity, own_units=own_units, backend=backend, ray_address=ray_address,
        workers=workers, shard_faces=shard_faces, trust_classifier=trust_classifier,
        subspaces=[s.strip() for s in subspaces.split(",") if s.strip()] if subspaces else None,
        command=shlex.join(["iceaudit", *_state.get("argv", sys.argv[1:])]),
    )
    _print_drivers(result)


def _print_drivers(result) -> None:
    """The ranked drivers of an `iceaudit.api.Audit`, as a table, then the verdict."""
    from rich.table import Table

    record = result.record
    table = Table(title=f"drivers of {record.classifier.name if record.classifier else result.dir}", title_justify="left")
    for col in ("rank", "subspace", "slope / unit", "95% CI", "flip rate", "p (Holm)", "significant"):
        table.add_column(col, justify="left" if col in ("subspace", "significant") else "right")
    for d in record.drivers:
        table.add_row(str(d.rank), d.name, f"{d.slope:+.4f}", f"{d.ci_low:+.4f} .. {d.ci_high:+.4f}",
                      f"{100 * d.flip_rate:.0f}%", "–" if d.p_adjusted is None else f"{d.p_adjusted:.3g}",
                      "[bold green]yes[/]" if d.significant else "no")
    out.print(table)
    out.print(result.verdict)
    out.print(f"wrote {result.dir}/summary.json, results.parquet, images/")
