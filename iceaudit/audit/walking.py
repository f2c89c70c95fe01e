"""Running the units of work on a backend, resuming finished ones, with a progress bar."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from iceaudit.atomic import write_text
from iceaudit.audit.backends import AuditWork, open_backend
from iceaudit.audit.directory import CHECKPOINT, shard_done, write_parquet
from iceaudit.audit.settings import AuditSettings
from iceaudit.audit.units import Calibration, UnitResult, WalkUnit, calibration_name, merge_walks, unit_images
from iceaudit.bank.format import Subspace
from iceaudit.validation import read_record

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


def walk_units(work: AuditWork, subspaces: list[Subspace], units: list[WalkUnit], settings: AuditSettings,
               out: Path | None) -> "Walked":
    """Run (or, with ``resume``, read back) every calibration and walk unit; each is written to
    the checkpoint as it finishes; the merged tables come back."""
    ckpt = out / CHECKPOINT if out is not None else None
    calibrations: dict[str, Calibration] = {}
    finished: list[UnitResult] = []
    if ckpt is not None and settings.output.resume:
        for i, sub in enumerate(subspaces):
            path = ckpt / f"{calibration_name(i, sub.id)}.calib.json"
            if path.is_file():
                calibrations[sub.id] = Calibration.from_json(read_record(path, "checkpoint", "json"))
        for unit in units:
            shard = ckpt / unit.name
            if shard_done(shard):
                finished.append(UnitResult(unit, pd.read_parquet(f"{shard}.walks.parquet"),
                                           pd.read_parquet(f"{shard}.cf.parquet"), work.batch, worker="checkpoint"))
    done = {r.unit for r in finished}
    todo = [u for u in units if u not in done]
    uncalibrated = [s.id for s in subspaces if s.id in {u.subspace for u in todo} and s.id not in calibrations]
    images = {u: unit_images(u, len(work.grids[u.subspace]), settings.science.n_null) for u in units}
    workers = 0
    with progress_bars(settings.output.progress) as progress:
        task = progress.add_task("walking subspaces", total=sum(images.values()), unit="images")
        progress.advance(task, sum(images[u] for u in done))
        if todo:
            backend = open_backend(settings.backend_options(), work)
            workers = backend.workers
            rate = _Throughput(len(units), len(done))
            try:
                progress.update(task, description=f"calibrating {len(uncalibrated)} subspaces on "
                                                  f"{backend.workers} {settings.run.backend} worker(s)")
                for cal in backend.calibrate(uncalibrated):
                    calibrations[cal.subspace] = cal
                    if ckpt is not None:
                        i = next(k for k, s in enumerate(subspaces) if s.id == cal.subspace)
                        write_text(ckpt / f"{calibration_name(i, cal.subspace)}.calib.json", json.dumps(cal.to_json()) + "\n")
                progress.update(task, description=rate.describe())
                for result in backend.walk(todo, calibrations, lambda k: progress.advance(task, k)):
                    if ckpt is not None:
                        shard = ckpt / result.unit.name
                        write_parquet(result.counterfactuals, Path(f"{shard}.cf.parquet"))
                        write_parquet(result.walks, Path(f"{shard}.walks.parquet"))  # written last: marks it done
                    finished.append(result)
                    progress.update(task, description=rate.add(result, images[result.unit]))
            finally:
                backend.close()
    results, counterfactuals = merge_walks(finished, subspaces, settings.science.n_null)
    return Walked(results, counterfactuals, workers=workers, resumed=len(done))


@dataclass
class Walked:
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


def auto_batch(device: torch.device, resolution: int) -> int:
    """Images per batch when none is asked for and no memory probe is possible: by resolution."""
    base = 4096 if device.type == "cuda" else 256
    return int(max(1, min(512, base * 64 * 64 // (resolution * resolution) if resolution > 64 else base)))


def batch_for_memory(free_bytes: int, bytes_per_image: float, ceiling: int = 1024, share: float = 0.6) -> int:
    """The largest batch whose images take at most `share` of the free memory (1 at least).

    Args:
        free_bytes: free device memory now.
        bytes_per_image: peak memory one image of generator + classifier takes (measured).
        ceiling: the batch never grows past this (past a few hundred images a GPU gains nothing).
        share: the part of the free memory to plan for; the rest is headroom for partial-synthesis
            states, the allocator and other processes (an out-of-memory error still halves the batch).
    """
    if bytes_per_image <= 0:
        return ceiling
    return int(max(1, min(ceiling, math.floor(share * free_bytes / bytes_per_image + 1e-9))))


def memory_batch(G: Generator, score_fn, device: torch.device, probe: int = 2) -> int:
    """CUDA: measure the peak memory of `probe` images through generator and classifier, and
    size the batch to the free memory (`batch_for_memory`). Not measured on a GPU in this
    project's CI (none is at hand): the out-of-memory halving is the tested safety net."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.no_grad():
        z = torch.randn(probe, G.z_dim, device=device)
        c = torch.zeros(probe, G.c_dim, device=device) if getattr(G, "c_dim", 0) else None
        score_fn(G.synthesis(G.mapping(z, c)))
    peak = torch.cuda.max_memory_allocated(device) - before
    free, _ = torch.cuda.mem_get_info(device)
    return batch_for_memory(free, peak / probe)


# -- statistics ------------------------------------------------------------------------------------


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


def progress_bars(enabled: bool):
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
