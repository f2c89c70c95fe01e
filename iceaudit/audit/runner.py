"""Run an audit: sample faces, walk every subspace (and its null directions),
find counterfactuals, compute statistics, write the audit directory.

The orchestration only; each job has its module: `settings` (what is asked),
`directory` (the audit directory, resume), `walking` (units on a backend),
`statistics`, `images`, `provenance` (the summary record); `stages` holds what crosses between them.

Audit directory::

    summary.json                       the record the report and gate read (iceaudit.record)
    results.parquet                    sample, seed, subspace, alpha, score, image_change (null walks: null:<id>:<k>)
    counterfactuals.parquet            sample, seed, subspace, step, score_before, score_after
    images/counterfactuals/sample_NNNN_{original,<id>,diff,pair}.png
    images/walks/<id>/sample_NNNN.png  one face across the strip's steps, left to right
    checkpoint/run.json                         what the audit is of (checked by --resume)
    checkpoint/NNN_<id>.calib.json              the subspace's image-change target and null units
    checkpoint/NNN_<id>.fSSSSSS.walks.parquet   one unit: the subspace's walk + its nulls for a face shard
    checkpoint/NNN_<id>.fSSSSSS.cf.parquet      that unit's counterfactuals

The walks are cut into units (`iceaudit.audit.units`) run by a backend (this process,
or Ray actors: `iceaudit.audit.backends`). Each unit is written atomically (temporary
file, then rename) as it finishes; ``resume=True`` reuses the units of a run with
identical inputs and settings, on either backend, so an interrupted audit finishes with
the same numbers.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from iceaudit import dirlock
from iceaudit.audit.classifier import Classifier
from iceaudit.audit.directory import CHECKPOINT, RUN_FILE, check_out, prepare_out, resumed_batch, write_parquet
from iceaudit.audit.images import AuditImages, write_images
from iceaudit.audit.provenance import bank_hash, card_hash, compose_summary
from iceaudit.audit.sample import Faces, default_n, resolve_device, sample_faces
from iceaudit.audit.settings import MAX_FACES, AuditSettings
from iceaudit.audit.stages import AuditInputs, Measured
from iceaudit.audit.statistics import per_face_table, statistics
from iceaudit.audit.units import AuditWork, WalkOptions, plan_units
from iceaudit.audit.walking import auto_batch, memory_batch, progress_bars, walk_units
from iceaudit.audit.walks import alpha_grid
from iceaudit.bank.edit import check_compatible
from iceaudit.bank.format import Bank, Subspace
from iceaudit.compiling import Compiler
from iceaudit.errors import UserError
from iceaudit.memory_format import resolve_memory_format, to_memory_format
from iceaudit.record import AuditRecord, CompileOutcome, Driver, Execution, SanityCheck, write_record
from iceaudit.stylegan2.networks import StyleSpaceAccess

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


__all__ = ["AuditResult", "AuditSettings", "CHECKPOINT", "MAX_FACES", "RUN_FILE", "bank_hash", "card_hash",
           "check_out", "prepare_out", "run_audit"]


@dataclass
class AuditResult:
    record: AuditRecord  # what summary.json holds
    drivers: list[Driver]  # ranked, strongest first
    results: pd.DataFrame  # long table: sample, seed, subspace, alpha, score
    counterfactuals: pd.DataFrame  # sample, seed, subspace, step, score_before, score_after
    per_face: pd.DataFrame  # sample, seed, score, positive, flipped_by (list of ids), best_subspace, best_step
    faces: Faces
    out: Path | None = None


def run_audit(classifier: Classifier, generator: Generator, bank: Bank | str | Path,
              settings: AuditSettings | None = None) -> AuditResult:
    """Audit ``classifier`` with faces from ``generator`` walked along ``bank``."""

    from iceaudit.bank.format import load_bank

    settings = settings or AuditSettings()
    settings.check()
    if isinstance(bank, (str, Path)):
        settings = settings.replace(bank_path=settings.run.bank_path or str(bank))
        bank = load_bank(bank)
    device = resolve_device(settings.run.device)
    G = generator.to(device).eval()
    for p in G.parameters():
        p.requires_grad_(False)
    fingerprint = G.fingerprint()
    bank.check_generator(fingerprint)
    subspaces = _select(bank, settings.science.subspaces)
    for sub in subspaces:
        check_compatible(G, sub)
    if classifier.device != device and classifier.kind != "onnx":
        classifier.model.to(device)
        classifier.device = device
    classifier.validate(G.img_resolution)
    n = settings.science.n or default_n(device)
    with _precision(G, classifier, settings.science.precision), \
            _accelerated(G, classifier, settings, device) as compiler:
        batch = settings.run.batch_images or resumed_batch(settings.output.out, settings.output.resume) or (
            memory_batch(G, classifier.decision_score, device) if device.type == "cuda"
            else auto_batch(device, G.img_resolution))
        return _run(classifier, G, fingerprint, bank, subspaces, settings, device, n, batch, compiler)


@contextlib.contextmanager
def _precision(G, classifier: Classifier, precision: str):
    """Both networks in `precision` for the audit, as they were afterwards (they are the caller's)."""
    if not hasattr(G, "precision"):
        if precision != "fp32":
            raise UserError(f"--precision {precision}: this generator ({getattr(G, 'architecture', type(G).__name__)}) runs in float32 only")
        yield
        return
    before = (G.precision, classifier.precision)
    G.precision, classifier.precision = precision, precision
    try:
        yield
    finally:
        G.precision, classifier.precision = before


@contextlib.contextmanager
def _accelerated(G, classifier: Classifier, settings: AuditSettings, device: torch.device):
    """--compile and --memory-format on both networks for the audit, as they were afterwards.
    Yields the Compiler (None without --compile)."""
    compiler = Compiler() if settings.run.compile else None
    layout = resolve_memory_format(settings.run.memory_format, device)
    convert = layout == "channels_last" and isinstance(classifier.model, torch.nn.Module)
    before = (G.compiler if isinstance(G, StyleSpaceAccess) else None, classifier.compiler, classifier.memory_format)
    if isinstance(G, StyleSpaceAccess):  # another generator type runs its synthesis eager
        G.compiler = compiler
    classifier.compiler, classifier.memory_format = compiler, layout
    if convert:
        to_memory_format(classifier.model, layout)
        if settings.run.memory_format == "auto" and not _runs(classifier, G.img_resolution):
            # e.g. a model that flattens with .view(), which a channels_last tensor refuses
            to_memory_format(classifier.model, "contiguous")
            classifier.memory_format, convert = "contiguous", False
    try:
        yield compiler
    finally:
        if isinstance(G, StyleSpaceAccess):
            G.compiler = before[0]
        classifier.compiler, classifier.memory_format = before[1], before[2]
        if convert:
            to_memory_format(classifier.model, "contiguous")


def _runs(classifier: Classifier, resolution: int) -> bool:
    try:
        classifier.validate(resolution)
    except UserError:
        return False
    return True


def _run(classifier: Classifier, G, fingerprint: str, bank: Bank, subspaces: list[Subspace],
         settings: AuditSettings, device: torch.device, n: int, batch: int,
         compiler: Compiler | None = None) -> AuditResult:
    """The audit of checked inputs: walks, statistics, images, baselines, the directory."""
    run_key = {
        "classifier_sha256": classifier.sha256, "card": classifier.card.to_dict(), "generator": fingerprint,
        "bank": bank_hash(bank), "subspaces": [s.id for s in subspaces], "n": n, "seed": settings.science.seed,
        "psi": settings.science.psi, "n_steps": settings.science.n_steps, "n_null": settings.science.n_null,
        "partial": settings.run.partial, "bisect_steps": settings.science.bisect_steps, "device": device.type,
        "batch_images": batch, "shard_faces": settings.run.shard_faces, "precision": settings.science.precision,
    }
    if "tcav" in settings.science.baselines:  # a layer the classifier lacks is refused before any work
        from iceaudit.audit.tcav import check_layer

        check_layer(classifier.decision_score, settings.science.tcav_layer)
    if settings.run.backend == "ray":  # an unreachable cluster or a missing Ray is refused before any work
        from iceaudit.audit.ray_backend import preflight

        preflight(settings.run.ray_address)
    out = Path(settings.output.out) if settings.output.out is not None else None
    with contextlib.ExitStack() as held:
        if out is not None:
            check_out(out, settings.output.resume)
            held.enter_context(dirlock.hold(out, "audit"))  # one audit per directory; dropped on exit or kill
            prepare_out(out, settings.output.resume, run_key)  # re-checked under the lock

        faces = sample_faces(G, n, seed=settings.science.seed, psi=settings.science.psi, device=device, batch_size=batch)
        grids = {s.id: alpha_grid(s.step_range, settings.science.n_steps) for s in subspaces}
        threshold = classifier.threshold
        options = WalkOptions(n_null=settings.science.n_null, null_seed=settings.science.seed,
                              partial=settings.run.partial, bisect_steps=settings.science.bisect_steps,
                              threshold=threshold)
        work = AuditWork(G=G, classifier=classifier, faces=faces, subspaces={s.id: s for s in subspaces}, grids=grids,
                         options=options, batch=batch)
        units = plan_units(subspaces, n, settings.run.shard_faces)
        walked = walk_units(work, subspaces, units, settings, out)
        inputs = AuditInputs(classifier=classifier, G=G, fingerprint=fingerprint, bank=bank, subspaces=subspaces,
                             settings=settings, device=device, n=n, batch=work.batch, faces=faces, grids=grids)
        drivers, null_floor = statistics(walked.results, subspaces, grids, threshold, settings)
        own = _own_units(G, bank, subspaces, faces, settings, drivers)
        measured = Measured(results=walked.results, counterfactuals=walked.counterfactuals, drivers=drivers,
                            null_floor=null_floor, own=own,
                            per_face=per_face_table(walked.results, walked.counterfactuals, subspaces, faces, threshold))
        images = write_images(out, inputs, measured) if out is not None else AuditImages()
        record = compose_summary(inputs, measured, images)
        # how the walks ran: provenance only (the numbers do not depend on it)
        record.provenance.execution = Execution(backend=settings.run.backend, workers=walked.workers, units=len(units),
                                                units_from_checkpoint=walked.resumed, shard_faces=settings.run.shard_faces,
                                                compile=_compile_outcome(compiler),
                                                memory_format=classifier.memory_format)
        if settings.science.sanity:
            record.validity.sanity = {"randomised_classifier": _sanity(classifier, G, bank, settings)}
        if settings.science.baselines:
            from iceaudit.audit.baselines import BaselineOptions, run_baselines
            from iceaudit.progress import rich_stages

            parser = _LabelMaps(settings.science.parser) if settings.science.parser is not None else None
            with progress_bars(settings.output.progress) as bars:
                record.baselines = run_baselines(classifier.decision_score, G, faces, bank, parser,
                                                 settings.science.baselines, out, drivers=drivers, threshold=threshold,
                                                 options=BaselineOptions(tcav_layer=settings.science.tcav_layer),
                                                 progress=rich_stages(bars),
                                                 checkpoint=out / CHECKPOINT / "baselines" if out is not None else None)
        if out is not None:
            write_parquet(measured.results, out / "results.parquet")
            write_parquet(measured.counterfactuals, out / "counterfactuals.parquet")
            write_record(record, out / "summary.json")
        return AuditResult(record=record, drivers=drivers, results=measured.results,
                           counterfactuals=measured.counterfactuals, per_face=measured.per_face, faces=faces, out=out)


def _own_units(G, bank: Bank, subspaces: list[Subspace], faces, settings: AuditSettings, drivers: list[Driver]):
    """Each walk's own effect per unit at the audited faces (or the bank's figure, where its eyes are not
    at hand), and every driver's slope per SD of its own criterion."""
    if not settings.science.own_units:
        return None
    from iceaudit.audit.own_units import AT_FACES, bank_eyes, own_criteria

    eyes, why = bank_eyes(bank)
    if eyes is None and any(s.criterion for s in subspaces) and settings.output.progress:
        print(f"note: own criteria not measured at the audited faces ({why}); the bank's figures are kept",
              file=sys.stderr)
    own = own_criteria(G, bank, subspaces, faces.ws, eyes)
    for d in drivers:
        o = own.get(d.subspace)
        if o is not None and o.measured_at == AT_FACES and d.extra is not None:
            d.extra.own_effect = o.effect_per_unit
            d.extra.slope_per_own_sd = d.slope / o.effect_per_unit if abs(o.effect_per_unit) > 1e-9 else None
    return own


def _compile_outcome(compiler: Compiler | None) -> CompileOutcome:
    """What --compile did so far (the walks, sampling and counterfactuals have run), for the record."""
    if compiler is None:
        return CompileOutcome(requested=False)
    status = compiler.status()
    return CompileOutcome(requested=True, used=status.used, backend=status.backend, compiled=status.compiled, fallback=status.fallback,
                          skipped=status.skipped)


class _LabelMaps:
    """A criteria-style parser (logits [N, L, H, W] + `labels`) as label maps for the baselines."""

    def __init__(self, parser: Any) -> None:
        self.parser, self.labels = parser, list(parser.labels)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.parser(images).argmax(dim=1)


# -- walking ---------------------------------------------------------------------------------------


def _sanity(classifier: Classifier, G, bank: Bank, settings: AuditSettings) -> SanityCheck:
    """Re-audit a copy of the classifier whose weights are redrawn at random
    (same per-tensor mean and SD): an audit that still finds drivers there is
    measuring the generator, not the classifier (Adebayo et al. 2018)."""
    import copy
    from dataclasses import replace

    if classifier.kind == "onnx":
        return SanityCheck(passed=None, note="skipped: ONNX weights cannot be re-initialised here")
    model = copy.deepcopy(classifier.model)
    gen = torch.Generator().manual_seed(settings.science.seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1:
                noise = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.device, p.dtype)
                p.copy_(noise * p.float().std().clamp_min(1e-3).to(p.dtype) + p.mean())
    clone = replace(classifier, model=model)
    sub = settings.replace(out=None, resume=False, sanity=False, baselines=[])
    res = run_audit(clone, G, bank, sub)
    # A re-drawn network still reacts to image change (effects); what it must not show is an
    # attribute that moves it more than random edits of the same size do.
    sig = [d.subspace for d in res.drivers if d.significant and d.beyond_random]
    return SanityCheck(n_significant=len(sig), significant=sig, max_abs_slope=max(abs(d.slope) for d in res.drivers),
                       passed=not sig, note="classifier weights re-drawn at random (same per-tensor mean and SD); "
                                            + ("no subspace significant beyond random edits" if not sig else
                                               "significant beyond random edits: " + ", ".join(sig)))


# -- images ----------------------------------------------------------------------------------------


def _select(bank: Bank, ids: list[str] | None) -> list[Subspace]:
    """The subspaces to audit, each with its step range clipped to where its walk stays faces."""
    if not bank.subspaces:
        raise UserError(f"bank {bank.name!r} has no subspaces")
    chosen = list(bank.subspaces) if not ids else [bank[i] for i in ids]
    return [replace(s, step_range=s.walk_range) for s in chosen]
