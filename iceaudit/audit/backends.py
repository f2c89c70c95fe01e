"""Where the audit's units run: in this process (``local``, the default) or on Ray.

A backend runs the calibrations and walk units of `iceaudit.audit.units` and hands
back their results as they finish; the runner writes each one to the audit
directory, merges them in a fixed order and computes the statistics itself. Both
backends call the same unit functions on the same faces with the same batch, so
their results are identical.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from iceaudit.audit.classifier import Classifier
from iceaudit.audit.sample import Faces
from iceaudit.audit.units import Calibration, UnitResult, WalkOptions, WalkUnit, calibrate, walk_unit
from iceaudit.bank.format import Subspace
from iceaudit.errors import UserError

BACKENDS = ("local", "ray")


@dataclass
class AuditWork:
    """Everything a worker needs to run any unit of one audit."""

    G: Any
    classifier: Classifier
    faces: Faces
    subspaces: dict[str, Subspace]
    grids: dict[str, np.ndarray]
    options: WalkOptions
    batch: int


@dataclass(frozen=True)
class BackendOptions:
    kind: str = "local"  # "local" | "ray"
    ray_address: str | None = None  # None: start a local Ray instance; "auto" or HOST:PORT: join a cluster
    workers: int | None = None  # Ray actors; None: one per GPU, or one per CPU


class Backend(Protocol):
    workers: int

    def calibrate(self, subspace_ids: list[str]) -> Iterator[Calibration]: ...

    def walk(self, units: list[WalkUnit], calibrations: dict[str, Calibration],
             on_images: Callable[[int], None]) -> Iterator[UnitResult]: ...

    def close(self) -> None: ...


class LocalBackend:
    """Runs the units one after the other in this process."""

    workers = 1

    def __init__(self, work: AuditWork) -> None:
        self.work = work

    def calibrate(self, subspace_ids: list[str]) -> Iterator[Calibration]:
        w = self.work
        for sid in subspace_ids:
            yield calibrate(w.G, w.faces, w.subspaces[sid], w.grids[sid], w.classifier.decision_score, w.options,
                            w.batch)

    def walk(self, units: list[WalkUnit], calibrations: dict[str, Calibration],
             on_images: Callable[[int], None]) -> Iterator[UnitResult]:
        w = self.work
        for unit in units:
            result = walk_unit(w.G, w.faces, unit, w.subspaces[unit.subspace], w.grids[unit.subspace],
                               calibrations[unit.subspace], w.classifier.decision_score, w.options, w.batch,
                               advance=on_images)
            w.batch = result.batch  # an out-of-memory halving holds for the units after it
            yield result

    def close(self) -> None:
        pass


def open_backend(options: BackendOptions, work: AuditWork) -> Backend:
    """The backend ``options.kind`` names, ready to run units of ``work``."""
    if options.kind == "local":
        return LocalBackend(work)
    if options.kind == "ray":
        from iceaudit.audit.ray_backend import RayBackend

        return RayBackend(work, address=options.ray_address, workers=options.workers)
    raise UserError(f"--backend must be one of {', '.join(BACKENDS)} (got {options.kind!r})")
