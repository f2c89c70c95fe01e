"""Run an audit: sample faces, walk every subspace (and its null directions),
find counterfactuals, compute statistics, write the audit directory.

Audit directory::

    summary.json                       the record the report and gate read (iceaudit.summary)
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

import hashlib
import json
import math
import contextlib
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from iceaudit import __version__, dirlock
from iceaudit.atomic import TEMP_GLOB, atomic_path, write_text
from iceaudit.audit.classifier import Classifier
from iceaudit.audit.backends import BACKENDS, AuditWork, BackendOptions, open_backend
from iceaudit.audit.sample import Faces, default_n, resolve_device, sample_faces
from iceaudit.audit.stats import end_slope, holm, null_floor_tests, walk_stats, zero_index
from iceaudit.audit.units import (Calibration, UnitResult, WalkOptions, WalkUnit, calibration_name, merge_walks,
                                  plan_units, unit_images)
from iceaudit.audit.units import on_device, safe_id
from iceaudit.audit.walks import Walker, alpha_grid
from iceaudit.bank.edit import check_compatible
from iceaudit.bank.format import Bank, Subspace
from iceaudit.errors import UserError
from iceaudit.validation import read_record
from iceaudit.summary import Driver, compose_verdict, write_summary

CHECKPOINT = "checkpoint"
MAX_FACES = 65_536  # faces per audit: their latents alone are ~2.4 GB at 1024 px (18 × 512 floats each)
RUN_FILE = "run.json"


@dataclass
class AuditSettings:
    n: int | None = None  # faces; None: 256 on CUDA, 64 on CPU
    seed: int = 0  # faces use seeds seed..seed+n-1; nulls and bootstrap derive from it
    psi: float = 1.0  # truncation (1 = no truncation: the generator's full distribution)
    n_steps: int = 9  # walk grid points over each step_range (0 is added if missing)
    n_null: int = 8  # random directions per subspace (walked to the two ends of its range)
    device: str = "auto"
    batch_images: int | None = None  # images per generator+classifier batch; None: by device and resolution
    partial: bool = True  # partial synthesis (False: full re-synthesis, for benchmarks)
    bisect_steps: int = 8  # bisection renders per counterfactual crossing
    n_bootstrap: int = 2000
    level: float = 0.05  # family-wise error rate for `significant` (Holm)
    # `significant` also needs a practical effect: walking the whole step range must move the
    # score by at least this share of the faces' median distance to the decision threshold
    # (a near-constant classifier can be "statistically" sensitive to everything, by 1e-4).
    min_margin_share: float = 0.1
    subspaces: list[str] | None = None  # audit only these ids (default: the whole bank)
    strip_faces: int = 4  # faces per walk strip image
    strip_subspaces: int = 6  # walk strips for the top drivers (plus every protected subspace)
    n_counterfactual_images: int = 8
    out: str | Path | None = None  # audit directory; None: compute only
    resume: bool = False
    progress: bool = True
    command: str | None = None  # recorded in provenance
    generator_name: str | None = None
    bank_path: str | None = None
    card_path: str | None = None
    sanity: bool = False  # also audit a copy of the classifier with re-initialised weights (doubles the time)
    baselines: list[str] = field(default_factory=list)  # Captum / latent / AttFind methods (parse_methods); [] = none
    parser: Any = None  # face parser (criteria convention: logits + `labels`) for region-level baselines
    # Where the walks run (not part of the result: any backend gives the same numbers, and
    # --resume continues an audit on another one). Units are (subspace, face shard) pieces.
    shard_faces: int = 64  # faces per walk unit
    backend: str = "local"  # "local" | "ray"
    ray_address: str | None = None  # None: a local Ray instance; "auto" / HOST:PORT: an existing cluster
    workers: int | None = None  # Ray actors (default: one per GPU, or per CPU)

    def check(self) -> None:
        """Every number in range, before any model is loaded (one message naming the flag)."""
        def whole(value, flag, lo, hi=None, none_ok=False):
            if value is None and none_ok:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
                limit = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
                raise UserError(f"{flag} must be a whole number {limit} (got {value!r})")

        def real(value, flag, lo, hi):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                raise UserError(f"{flag} must be a number from {lo} to {hi} (got {value!r})")

        whole(self.n, "--n", 2, MAX_FACES, none_ok=True)
        whole(self.seed, "--seed", 0, 2**32 - (self.n or 2))
        real(self.psi, "--psi", 0.0, 1.5)
        whole(self.n_steps, "--steps", 2, 201)
        whole(self.n_null, "--null", 2, 1000)
        whole(self.batch_images, "--batch", 1, 65536, none_ok=True)
        whole(self.bisect_steps, "bisect_steps", 0, 64)
        whole(self.n_bootstrap, "n_bootstrap", 100, 1_000_000)
        real(self.level, "level", 1e-9, 0.5)
        real(self.min_margin_share, "min_margin_share", 0.0, 100.0)
        whole(self.shard_faces, "--shard-faces", 1)
        whole(self.workers, "--workers", 1, 100_000, none_ok=True)
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)} (got {self.backend!r})")

    def backend_options(self) -> BackendOptions:
        return BackendOptions(kind=self.backend, ray_address=self.ray_address, workers=self.workers)


@dataclass
class AuditResult:
    summary: dict[str, Any]  # exactly what summary.json holds
    drivers: list[Driver]  # ranked, strongest first
    results: pd.DataFrame  # long table: sample, seed, subspace, alpha, score
    counterfactuals: pd.DataFrame  # sample, seed, subspace, step, score_before, score_after
    per_face: pd.DataFrame  # sample, seed, score, positive, flipped_by (list of ids), best_subspace, best_step
    faces: Faces
    out: Path | None = None


def run_audit(classifier: Classifier, generator, bank: Bank | str | Path,
              settings: AuditSettings | None = None) -> AuditResult:
    """Audit ``classifier`` with faces from ``generator`` walked along ``bank``."""
    from iceaudit.bank.format import load_bank

    from dataclasses import replace

    settings = settings or AuditSettings()
    settings.check()
    if isinstance(bank, (str, Path)):
        settings = replace(settings, bank_path=settings.bank_path or str(bank))
        bank = load_bank(bank)
    device = resolve_device(settings.device)
    G = generator.to(device).eval()
    for p in G.parameters():
        p.requires_grad_(False)
    fingerprint = G.fingerprint()
    bank.check_generator(fingerprint)
    subspaces = _select(bank, settings.subspaces)
    for sub in subspaces:
        check_compatible(G, sub)
    if classifier.device != device and classifier.kind != "onnx":
        classifier.model.to(device)
        classifier.device = device
    classifier.validate(G.img_resolution)
    n = settings.n or default_n(device)
    batch = settings.batch_images or _auto_batch(device, G.img_resolution)

    run_key = {
        "classifier_sha256": classifier.sha256, "card": classifier.card.to_dict(), "generator": fingerprint,
        "bank": bank_hash(bank), "subspaces": [s.id for s in subspaces], "n": n, "seed": settings.seed,
        "psi": settings.psi, "n_steps": settings.n_steps, "n_null": settings.n_null,
        "partial": settings.partial, "bisect_steps": settings.bisect_steps, "device": device.type,
        "batch_images": batch, "shard_faces": settings.shard_faces,
    }
    if settings.backend == "ray":  # an unreachable cluster or a missing Ray is refused before any work
        from iceaudit.audit.ray_backend import preflight

        preflight(settings.ray_address)
    out = Path(settings.out) if settings.out is not None else None
    with contextlib.ExitStack() as held:
        if out is not None:
            check_out(out, settings.resume)
            held.enter_context(dirlock.hold(out, "audit"))  # one audit per directory; dropped on exit or kill
            prepare_out(out, settings.resume, run_key)  # re-checked under the lock

        faces = sample_faces(G, n, seed=settings.seed, psi=settings.psi, device=device, batch_size=batch)
        grids = {s.id: alpha_grid(s.step_range, settings.n_steps) for s in subspaces}
        score_fn = classifier.decision_score
        threshold = classifier.threshold

        options = WalkOptions(n_null=settings.n_null, null_seed=settings.seed, partial=settings.partial,
                              bisect_steps=settings.bisect_steps, threshold=threshold)
        work = AuditWork(G=G, classifier=classifier, faces=faces, subspaces={s.id: s for s in subspaces}, grids=grids,
                         options=options, batch=batch)
        units = plan_units(subspaces, n, settings.shard_faces)
        walked = _walk_units(work, subspaces, units, settings, out)
        results, counterfactuals = walked.results, walked.counterfactuals
        batch = work.batch
        drivers, null_info = _statistics(results, subspaces, grids, threshold, settings)
        per_face = _per_face(results, counterfactuals, subspaces, faces, threshold)

        images: dict[str, Any] = {"walk_strips": {}, "best": []}
        if out is not None:
            images = _write_images(out, G, faces, subspaces, drivers, per_face, counterfactuals, results,
                                   grids, score_fn, batch, settings)
        summary = _summary(classifier, G, fingerprint, bank, subspaces, settings, n, device, batch, grids, drivers,
                           null_info, counterfactuals, per_face, images)
        # how the walks ran: provenance only (the numbers do not depend on it)
        summary["provenance"]["execution"] = {"backend": settings.backend, "workers": walked.workers,
                                              "units": len(units), "units_from_checkpoint": walked.resumed,
                                              "shard_faces": settings.shard_faces}
        if settings.sanity:
            summary["validity"]["sanity"] = {"randomised_classifier": _sanity(classifier, G, bank, settings)}
        if settings.baselines:
            from iceaudit.audit.baselines import run_baselines

            from iceaudit.progress import rich_stages

            parser = _LabelMaps(settings.parser) if settings.parser is not None else None
            with _progress(settings.progress) as bars:
                summary["baselines"] = run_baselines(score_fn, G, faces, bank, parser, settings.baselines, out,
                                                     drivers=drivers, threshold=threshold, progress=rich_stages(bars),
                                                     checkpoint=out / CHECKPOINT / "baselines" if out is not None else None)
        if out is not None:
            _write_parquet(results, out / "results.parquet")
            _write_parquet(counterfactuals, out / "counterfactuals.parquet")
            write_summary(summary, out / "summary.json")
        return AuditResult(summary=summary, drivers=drivers, results=results, counterfactuals=counterfactuals,
                           per_face=per_face, faces=faces, out=out)


class _LabelMaps:
    """A criteria-style parser (logits [N, L, H, W] + `labels`) as label maps for the baselines."""

    def __init__(self, parser: Any) -> None:
        self.parser, self.labels = parser, list(parser.labels)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.parser(images).argmax(dim=1)


# -- walking ---------------------------------------------------------------------------------------


def _walk_units(work: AuditWork, subspaces: list[Subspace], units: list[WalkUnit], settings: AuditSettings,
                out: Path | None) -> "_Walked":
    """Run (or, with ``resume``, read back) every calibration and walk unit; each is written to
    the checkpoint as it finishes; the merged tables come back."""
    ckpt = out / CHECKPOINT if out is not None else None
    calibrations: dict[str, Calibration] = {}
    finished: list[UnitResult] = []
    if ckpt is not None and settings.resume:
        for i, sub in enumerate(subspaces):
            path = ckpt / f"{calibration_name(i, sub.id)}.calib.json"
            if path.is_file():
                calibrations[sub.id] = Calibration.from_json(read_record(path, "checkpoint", "json"))
        for unit in units:
            shard = ckpt / unit.name
            if _shard_done(shard):
                finished.append(UnitResult(unit, pd.read_parquet(f"{shard}.walks.parquet"),
                                           pd.read_parquet(f"{shard}.cf.parquet"), work.batch, worker="checkpoint"))
    done = {r.unit for r in finished}
    todo = [u for u in units if u not in done]
    uncalibrated = [s.id for s in subspaces if s.id in {u.subspace for u in todo} and s.id not in calibrations]
    images = {u: unit_images(u, len(work.grids[u.subspace]), settings.n_null) for u in units}
    workers = 0
    with _progress(settings.progress) as progress:
        task = progress.add_task("walking subspaces", total=sum(images.values()), unit="images")
        progress.advance(task, sum(images[u] for u in done))
        if todo:
            backend = open_backend(settings.backend_options(), work)
            workers = backend.workers
            rate = _Throughput(len(units), len(done))
            try:
                progress.update(task, description=f"calibrating {len(uncalibrated)} subspaces on "
                                                  f"{backend.workers} {settings.backend} worker(s)")
                for cal in backend.calibrate(uncalibrated):
                    calibrations[cal.subspace] = cal
                    if ckpt is not None:
                        i = next(k for k, s in enumerate(subspaces) if s.id == cal.subspace)
                        _write_text(json.dumps(cal.to_json()) + "\n", ckpt / f"{calibration_name(i, cal.subspace)}.calib.json")
                progress.update(task, description=rate.describe())
                for result in backend.walk(todo, calibrations, lambda k: progress.advance(task, k)):
                    if ckpt is not None:
                        shard = ckpt / result.unit.name
                        _write_parquet(result.counterfactuals, Path(f"{shard}.cf.parquet"))
                        _write_parquet(result.walks, Path(f"{shard}.walks.parquet"))  # written last: marks it done
                    finished.append(result)
                    progress.update(task, description=rate.add(result, images[result.unit]))
            finally:
                backend.close()
    results, counterfactuals = merge_walks(finished, subspaces, settings.n_null)
    return _Walked(results, counterfactuals, workers=workers, resumed=len(done))


@dataclass
class _Walked:
    results: pd.DataFrame
    counterfactuals: pd.DataFrame
    workers: int  # backend workers used (0: everything came from the checkpoint)
    resumed: int  # units read back from the checkpoint


class _Throughput:
    """The walking bar's description: units done and images/s per worker."""

    def __init__(self, n_units: int, n_done: int) -> None:
        self.n_units, self.n_done = n_units, n_done
        self.images: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def add(self, result: UnitResult, images: int) -> str:
        self.n_done += 1
        self.images[result.worker] = self.images.get(result.worker, 0) + images
        self.seconds[result.worker] = self.seconds.get(result.worker, 0.0) + result.seconds
        return self.describe()

    def describe(self) -> str:
        rates = ", ".join(f"{w} {self.images[w] / max(self.seconds[w], 1e-9):.0f}" for w in sorted(self.images))
        return f"walking {self.n_done}/{self.n_units} units" + (f" · img/s {rates}" if rates else "")


def _auto_batch(device: torch.device, resolution: int) -> int:
    base = 4096 if device.type == "cuda" else 256
    return int(max(1, min(512, base * 64 * 64 // (resolution * resolution) if resolution > 64 else base)))


# -- statistics ------------------------------------------------------------------------------------


def _scores(results: pd.DataFrame, sid: str, n_alpha: int) -> np.ndarray:
    rows = results[results["subspace"] == sid].sort_values(["sample", "alpha"], kind="stable")
    return rows["score"].to_numpy().reshape(-1, n_alpha)


def _statistics(results, subspaces, grids, threshold, settings):
    stats, tests_in, null_slopes, groups, change = {}, {}, {}, {}, {}
    for i, sub in enumerate(subspaces):
        alphas = grids[sub.id]
        scores = _scores(results, sub.id, len(alphas))
        stats[sub.id] = walk_stats(alphas, scores, threshold, seed=settings.seed * 7919 + i,
                                   n_resamples=settings.n_bootstrap)
        # Slopes per unit of image change: every null changes the image as much as its
        # subspace, so nulls of one layer group share a distribution in these units and pool.
        change[sub.id] = float(results.loc[results["subspace"] == sub.id, "image_change"].iloc[0]) or 1.0
        tests_in[sub.id] = end_slope(alphas, scores) / change[sub.id]
        ends = alphas[[0, -1]]
        null_slopes[sub.id] = [end_slope(ends, _scores(results, f"null:{sub.id}:{k}", 2)) / change[sub.id]
                               for k in range(settings.n_null)]
        groups[sub.id] = (sub.space, json.dumps(list(sub.layers)), tuple(sub.step_range))
    tests = null_floor_tests(tests_in, null_slopes, groups, level=settings.level)
    p_adj = holm([tests[s.id].p_value for s in subspaces], settings.level)
    first = subspaces[0].id
    base = _scores(results, first, len(grids[first]))[:, zero_index(grids[first])]
    margin = float(np.median(np.abs(base - threshold)))
    records = []
    for sub, pa in zip(subspaces, p_adj):
        s, t, c = stats[sub.id], tests[sub.id], change[sub.id]
        width = float(sub.step_range[1] - sub.step_range[0])
        share = abs(s.slope) * width / margin if margin > 0 else float("inf")
        holm_ok = bool(np.isfinite(pa) and pa < settings.level)
        records.append(Driver(
            subspace=sub.id, name=sub.name, tags=list(sub.tags), slope=s.slope, ci_low=s.ci_low, ci_high=s.ci_high,
            mean_abs_change=s.mean_abs_change, flip_rate=s.flip_rate, monotonicity=s.monotonicity,
            heterogeneity=s.heterogeneity, null_abs_slope=_finite(t.floor * c), p_value=_finite(t.p_value, 1.0),
            p_adjusted=_finite(pa, 1.0), significant=holm_ok and share >= settings.min_margin_share,
            extra={"margin_share": _finite(share, 1e9), "median_margin": margin, "beats_null": holm_ok,
                   "end_slope": t.statistic * c, "null_sigma": _finite(t.sigma * c), "null_df": t.df,
                   "null_slopes": [v * c for v in t.null_slopes], "image_change": c, "mean_abs_slope": s.mean_abs_slope,
                   "ci_excludes_zero": bool(s.ci_low > 0 or s.ci_high < 0), "unit": sub.unit,
                   "step_range": list(sub.step_range), "space": sub.space,
                   # the walk follows the basis' principal (first) row only; a k-row subspace's
                   # other k - 1 directions are not audited, and the report says so
                   "basis_rows": int(sub.basis.shape[0]), "rows_audited": 1},
        ))
    # Significant drivers first, then by |slope| (score per semantic unit).
    records.sort(key=lambda d: (not d.significant, -abs(d.slope), d.subspace))
    for rank, d in enumerate(records, start=1):
        d.rank = rank
    all_null = np.concatenate([np.abs(null_slopes[s.id]) * change[s.id] for s in subspaces])
    null_info = {
        "test": "two-sided t-test of each subspace's end-to-end slope (mean over faces of the score change "
                "between the ends of its step range, per unit) against random directions in the same space "
                "and layers, each rescaled so that walking the range changes the image as much as the "
                "subspace does; slopes per unit of image change, sigma from the nulls' mean square pooled "
                "per layer group; Holm over subspaces; significant also needs margin_share >= "
                f"{settings.min_margin_share}",
        "n_directions": settings.n_null * len(subspaces), "n_per_subspace": settings.n_null,
        "quantile": 1 - settings.level / 2,
        "abs_slope": _finite(float(np.quantile(all_null, 1 - settings.level / 2))),
        "per_subspace": {sid: {"floor": _finite(t.floor * change[sid]), "sigma": _finite(t.sigma * change[sid]),
                               "df": t.df, "null_slopes": [v * change[sid] for v in t.null_slopes],
                               "end_slope": t.statistic * change[sid], "image_change": change[sid]}
                         for sid, t in tests.items()},
    }
    return records, null_info


def _finite(x, default=None):
    x = float(x)
    return x if np.isfinite(x) else default


def _per_face(results, counterfactuals, subspaces, faces, threshold) -> pd.DataFrame:
    first = subspaces[0].id
    base = results[(results["subspace"] == first) & (results["alpha"] == 0.0)].sort_values("sample")
    score = base["score"].to_numpy()
    rows = []
    by_face = {k: g for k, g in counterfactuals.groupby("sample")}
    for i in range(len(faces)):
        g = by_face.get(i)
        if g is None or g.empty:
            rows.append((i, int(faces.seeds[i]), float(score[i]), bool(score[i] > threshold), [], None, None))
            continue
        g = g.assign(abs_step=g["step"].abs()).sort_values(["abs_step", "subspace"], kind="stable")
        rows.append((i, int(faces.seeds[i]), float(score[i]), bool(score[i] > threshold),
                     sorted(g["subspace"].tolist()), g["subspace"].iloc[0], float(g["step"].iloc[0])))
    return pd.DataFrame(rows, columns=["sample", "seed", "score", "positive", "flipped_by", "best_subspace", "best_step"])


def _sanity(classifier: Classifier, G, bank: Bank, settings: AuditSettings) -> dict[str, Any]:
    """Re-audit a copy of the classifier whose weights are redrawn at random
    (same per-tensor mean and SD): an audit that still finds drivers there is
    measuring the generator, not the classifier (Adebayo et al. 2018)."""
    import copy
    from dataclasses import replace

    if classifier.kind == "onnx":
        return {"passed": None, "note": "skipped: ONNX weights cannot be re-initialised here"}
    model = copy.deepcopy(classifier.model)
    gen = torch.Generator().manual_seed(settings.seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1:
                noise = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.device, p.dtype)
                p.copy_(noise * p.float().std().clamp_min(1e-3).to(p.dtype) + p.mean())
    clone = replace(classifier, model=model)
    sub = replace(settings, out=None, resume=False, sanity=False, baselines=[])
    res = run_audit(clone, G, bank, sub)
    sig = [d.subspace for d in res.drivers if d.significant]
    return {"n_significant": len(sig), "significant": sig,
            "max_abs_slope": max(abs(d.slope) for d in res.drivers), "passed": not sig,
            "note": "classifier weights re-drawn at random (same per-tensor mean and SD); "
                    + ("no subspace significant" if not sig else "significant: " + ", ".join(sig))}


# -- images ----------------------------------------------------------------------------------------


def _to_pil(img: torch.Tensor):
    from PIL import Image

    arr = ((img.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def _hstack(images):
    from PIL import Image

    w, h = images[0].size
    strip = Image.new("RGB", (w * len(images), h))
    for k, im in enumerate(images):
        strip.paste(im, (k * w, 0))
    return strip


def _save(im, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


def _strip_alphas(alphas: np.ndarray, k: int = 5) -> np.ndarray:
    idx = set(np.linspace(0, len(alphas) - 1, min(k, len(alphas))).round().astype(int).tolist())
    idx.add(zero_index(alphas))
    return alphas[sorted(idx)]


def _write_images(out, G, faces, subspaces, drivers, per_face, counterfactuals, results, grids, score_fn, batch,
                  settings) -> dict[str, Any]:
    by_id = {s.id: s for s in subspaces}
    device = faces.ws.device
    strips: dict[str, list[dict[str, Any]]] = {}
    shown = [d.subspace for d in drivers[: settings.strip_subspaces]]
    shown += [s.id for s in subspaces if "protected" in s.tags and s.id not in shown]
    samples = np.arange(min(settings.strip_faces, len(faces)))
    for sid in shown:
        alphas = _strip_alphas(grids[sid])
        walker = Walker(G, faces, on_device(by_id[sid], device), score_fn, batch_images=batch, partial=settings.partial)
        imgs = walker.images(np.repeat(samples, len(alphas)), np.tile(alphas, len(samples)))
        entries = []
        for j, s in enumerate(samples):
            rel = f"images/walks/{safe_id(sid)}/sample_{s:04d}.png"
            _save(_hstack([_to_pil(im) for im in imgs[j * len(alphas):(j + 1) * len(alphas)]]), out / rel)
            sc = results[(results["subspace"] == sid) & (results["sample"] == s)].set_index("alpha")["score"]
            entries.append({"sample": int(s), "image": rel, "alphas": [float(a) for a in alphas],
                            "scores": [float(sc.get(a, np.nan)) for a in alphas]})
        strips[sid] = entries
    best = []
    shown_faces = per_face[per_face["best_subspace"].notna()].head(settings.n_counterfactual_images)
    for row in shown_faces.itertuples():
        sid, step = row.best_subspace, float(row.best_step)
        walker = Walker(G, faces, on_device(by_id[sid], device), score_fn, batch_images=batch, partial=settings.partial)
        orig, cf = walker.images(np.array([row.sample, row.sample]), np.array([0.0, step]))
        stem = f"images/counterfactuals/sample_{row.sample:04d}"
        o, c = _to_pil(orig), _to_pil(cf)
        diff = (cf - orig).abs().mean(0)
        diff = (diff / diff.max().clamp_min(1e-8) * 2 - 1).expand(3, -1, -1)
        paths = {"original": f"{stem}_original.png", "counterfactual": f"{stem}_{safe_id(sid)}.png",
                 "diff": f"{stem}_diff.png", "pair": f"{stem}_pair.png"}
        _save(o, out / paths["original"])
        _save(c, out / paths["counterfactual"])
        _save(_to_pil(diff), out / paths["diff"])
        _save(_hstack([o, c]), out / paths["pair"])
        rec = counterfactuals[(counterfactuals["sample"] == row.sample) & (counterfactuals["subspace"] == sid)].iloc[0]
        best.append({"sample": int(row.sample), "seed": int(row.seed), "subspace": sid, "step": step,
                     "score_before": float(rec["score_before"]), "score_after": float(rec["score_after"]), **paths})
    return {"walk_strips": strips, "best": best}


# -- summary ---------------------------------------------------------------------------------------


def _summary(classifier, G, fingerprint, bank, subspaces, settings, n, device, batch, grids, drivers, null_info,
             counterfactuals, per_face, images) -> dict[str, Any]:
    grid_lists = {sid: [float(a) for a in g] for sid, g in grids.items()}
    same_grid = len({tuple(v) for v in grid_lists.values()}) == 1
    per_subspace = {}
    for sub in subspaces:
        c = counterfactuals[counterfactuals["subspace"] == sub.id]
        per_subspace[sub.id] = {"success_rate": len(c) / n,
                                "median_step": float(c["step"].abs().median()) if len(c) else None,
                                "n_flipped": int(len(c))}
    protected = [s.id for s in subspaces if "protected" in s.tags]
    dmap = {d.subspace: d for d in drivers}
    findings = []
    for sid in protected:
        d = dmap[sid]
        statement = (f"{d.name}: one unit moves the score by {d.slope:+.3g} (95% CI {d.ci_low:+.3g} to {d.ci_high:+.3g}) "
                     f"and flips {100 * d.flip_rate:.0f}% of decisions within the tested range; "
                     + ("significant against random directions." if d.significant else
                        "not distinguishable from random directions."))
        findings.append({"subspace": sid, "name": d.name, "slope": d.slope, "ci_low": d.ci_low, "ci_high": d.ci_high,
                         "flip_rate": d.flip_rate, "significant": d.significant, "p_adjusted": d.p_adjusted,
                         "statement": statement})
    n_pos = int(per_face["positive"].sum())
    command = settings.command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    return {
        "classifier": {"name": classifier.name, "path": classifier.path, "sha256": classifier.sha256,
                       "kind": classifier.kind, "differentiable": classifier.differentiable,
                       "positive_class": classifier.card.positive_class, "threshold": classifier.threshold,
                       "head": classifier.card.head, "card": classifier.card.to_dict()},
        "generator": {"name": settings.generator_name or type(G).__name__, "fingerprint": fingerprint,
                      "resolution": int(G.img_resolution)},
        "bank": {"name": bank.name, "path": settings.bank_path, "hash": bank_hash(bank),
                 "subspaces": [{"id": s.id, "name": s.name, "tags": list(s.tags), "unit": s.unit,
                                "step_range": list(s.step_range), "description": s.description, "space": s.space,
                                "layers": list(s.layers), "method": s.method, "alphas": grid_lists[s.id]}
                               for s in subspaces]},
        "settings": {"n_samples": n, "seed": settings.seed, "psi": settings.psi,
                     "alphas": next(iter(grid_lists.values())) if same_grid else grid_lists,
                     "n_steps": settings.n_steps, "n_null": settings.n_null, "device": str(device),
                     "batch_images": batch, "partial_synthesis": settings.partial,
                     "bisect_steps": settings.bisect_steps, "n_bootstrap": settings.n_bootstrap,
                     "level": settings.level},
        "verdict": compose_verdict([asdict(d) for d in drivers]),
        "drivers": drivers,
        "walk_strips": images["walk_strips"],
        "counterfactuals": {
            "method": f"grid + {settings.bisect_steps} bisection renders through the generator per crossing; "
                      "step = smallest |alpha| (semantic units) whose decision differs from alpha = 0",
            "per_subspace": per_subspace,
            "best": images["best"],
            "per_face": [{"sample": int(r.sample), "seed": int(r.seed), "score": float(r.score),
                          "positive": bool(r.positive), "flipped_by": list(r.flipped_by),
                          "best_subspace": r.best_subspace if isinstance(r.best_subspace, str) else None,
                          "best_step": None if r.best_step is None or pd.isna(r.best_step) else float(r.best_step)}
                         for r in per_face.itertuples()],
        },
        "fairness": {"protected": protected, "findings": findings},
        "validity": {**_bank_validity(bank), "null_floor": null_info,
                     "base_rate": {"positive": n_pos / n, "n_positive": n_pos, "n": n,
                                   "note": "share of sampled faces the classifier calls positive at alpha = 0"}},
        "baselines": {},
        "provenance": {
            "iceaudit_version": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "command": command,
            "seeds": {"faces": [settings.seed, settings.seed + n - 1], "null_directions": settings.seed,
                      "bootstrap": settings.seed, "z_convention": "np.random.RandomState(seed).randn(z_dim)"},
            "hashes": {"classifier": classifier.sha256, "card": card_hash(classifier),
                       "generator": fingerprint, "bank": bank_hash(bank),
                       "bank_manifest": _manifest_sha(settings.bank_path)},
            "card_path": settings.card_path,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def _bank_validity(bank: Bank) -> dict:
    """The bank's own validation figures (measured when it was built or `bank validate`d), in
    the shape the report reads: each walk's effect on its own criterion and its leakage."""
    own, leak = {}, {}
    for sub in bank.subspaces:
        v = sub.validation or {}
        if "own_effect" not in v:
            continue
        own[sub.id] = {"criterion": sub.unit or sub.criterion, "effect_per_unit": float(v["own_effect"]),
                       "expected": 1.0, "ok": bool(v.get("passed", True))}
        leak[sub.id] = {k: float(x) for k, x in {**v.get("leakage", {}), **v.get("leakage_unchecked", {})}.items()}
    return {"own_criterion": own, "leakage": leak} if own else {}


def bank_hash(bank: Bank) -> str:
    """sha256 of a bank's content (manifest entries + bases), independent of where it lies."""
    h = hashlib.sha256()
    h.update(json.dumps({"name": bank.name, "fingerprint": bank.generator_fingerprint}, sort_keys=True).encode())
    for s in bank.subspaces:
        h.update(json.dumps(s.manifest_entry(), sort_keys=True, default=str).encode())
        h.update(s.basis.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def card_hash(classifier: Classifier) -> str:
    return hashlib.sha256(json.dumps(classifier.card.to_dict(), sort_keys=True).encode()).hexdigest()


def _manifest_sha(bank_path: str | None) -> str | None:
    if not bank_path:
        return None
    p = Path(bank_path) / "manifest.json"
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


# -- audit directory -------------------------------------------------------------------------------


def check_out(out: str | Path, resume: bool) -> Path:
    """Cheap early check of the audit directory (before any model is loaded)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory; nothing was written")
    if resume and not (out.is_dir() and not dirlock.is_empty(out)):
        raise UserError(f"--resume: {out} holds no interrupted audit ({'it is empty' if out.is_dir() else 'it does not exist'})",
                        hint="Run without --resume to start the audit there.")
    if out.is_dir() and not dirlock.is_empty(out):
        if not resume:
            raise UserError(
                f"--out {out} is not empty; nothing was written",
                hint="Pass --resume to continue an interrupted audit there, or choose a new directory.",
            )
        if not (out / CHECKPOINT / RUN_FILE).is_file():
            raise UserError(f"--resume: {out} holds no interrupted audit ({CHECKPOINT}/{RUN_FILE} is missing); "
                            "nothing was written")
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"--out {out}: cannot create it ({parent} is not a writable directory)")
    return out


def prepare_out(out: Path, resume: bool, run_key: dict[str, Any]) -> None:
    """Create the audit directory, or check that ``resume`` continues the same audit.
    Never deletes anything."""
    check_out(out, resume)
    run_file = out / CHECKPOINT / RUN_FILE
    key = json.loads(json.dumps(run_key, default=str))
    if out.is_dir() and not dirlock.is_empty(out):
        try:
            old = read_record(run_file, "checkpoint", "json")
        except UserError:
            raise UserError(f"--resume: {run_file} is damaged; start a new audit directory") from None
        if old != key:
            changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
            raise UserError(
                f"--resume: {out} holds an audit of different inputs or settings ({', '.join(changed)} differ); "
                "nothing was changed",
                hint="Resume with exactly the same classifier, card, generator, bank and options, or use a new --out.",
            )
        for stale in out.rglob(TEMP_GLOB):  # temporaries of a killed writer (we hold the directory's lock)
            stale.unlink(missing_ok=True)
        return
    try:
        (out / CHECKPOINT).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create the directory ({err.strerror})") from None
    _write_text(json.dumps(key, indent=2, sort_keys=True) + "\n", run_file)


def _shard_done(shard: Path) -> bool:
    return Path(f"{shard}.walks.parquet").is_file() and Path(f"{shard}.cf.parquet").is_file()


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _write_text(text: str, path: Path) -> None:
    write_text(path, text)


def _select(bank: Bank, ids: list[str] | None) -> list[Subspace]:
    if not bank.subspaces:
        raise UserError(f"bank {bank.name!r} has no subspaces")
    if not ids:
        return list(bank.subspaces)
    return [bank[i] for i in ids]


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def advance(self, *a, **k):
        pass

    def update(self, *a, **k):
        pass


def _progress(enabled: bool):
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
