"""Where the audit's units run: in this process (``local``, the default) or on Ray.

A backend runs the calibrations and walk units of `iceaudit.audit.units` and hands
back their results as they finish; the runner writes each one to the audit
directory, merges them in a fixed order and computes the statistics itself. Both
backends call the same unit functions on the same faces with the same batch, so
their results are identical.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

from iceaudit.audit.units import AuditWork, Calibration, UnitResult, WalkUnit, calibrate, walk_unit
from iceaudit.errors import UserError

BACKENDS = ("local", "ray")


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
        for sid in subspace_ids:
            yield calibrate(self.work, sid)

    def walk(self, units: list[WalkUnit], calibrations: dict[str, Calibration],
             on_images: Callable[[int], None]) -> Iterator[UnitResult]:
        for unit in units:  # an out-of-memory halving in one unit holds for the units after it (work.batch)
            yield walk_unit(self.work, unit, calibrations[unit.subspace], advance=on_images)

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
