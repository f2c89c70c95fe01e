"""The audit's units of work, the same on every backend.

An audit walks every subspace (and its null directions) for every face. The work is
cut into

* one **calibration** per subspace: how much walking its step range changes the image
  (on the first faces), and the unit of each null direction that makes it change the
  image as much; and
* **walk units**, one per (subspace, face shard): the subspace's walk and its null
  walks for the faces ``start .. stop - 1``, and their counterfactuals.

A walk unit needs its subspace's calibration and nothing else from other units, so
units run in any order and on any worker; ``merge_walks`` puts their tables back in a
fixed order. Both the local backend and the Ray backend run exactly these functions,
which is why their results are identical.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, TypeVar

import numpy as np
import pandas as pd
import torch

from iceaudit.audit.classifier import Classifier
from iceaudit.audit.counterfactuals import smallest_flips
from iceaudit.audit.sample import Faces
from iceaudit.audit.stats import zero_index
from iceaudit.audit.walks import Walker, end_to_end_change, match_image_change, null_directions
from iceaudit.bank.format import Subspace
from iceaudit.errors import UserError
from iceaudit.stylegan2.networks import Generator

T = TypeVar("T")

CALIBRATION_FACES = 8  # faces the image-change target of a subspace is measured on


@dataclass(frozen=True)
class WalkOptions:
    """What every unit of one audit shares (besides the models and the faces)."""

    n_null: int
    null_seed: int  # the audit's seed: each subspace's null directions derive from it and its id
    partial: bool
    bisect_steps: int
    threshold: float


@dataclass(frozen=True)
class Calibration:
    """A subspace's image-change target and its null directions' matched units."""

    subspace: str
    target: float  # mean |image(hi) - image(lo)| of the subspace's own walk
    null_unit_norms: tuple[float, ...]

    def to_json(self) -> dict:
        return {"subspace": self.subspace, "target": self.target, "null_unit_norms": list(self.null_unit_norms)}

    @classmethod
    def from_json(cls, data: dict) -> "Calibration":
        return cls(subspace=str(data["subspace"]), target=float(data["target"]),
                   null_unit_norms=tuple(float(v) for v in data["null_unit_norms"]))


@dataclass(frozen=True)
class WalkUnit:
    """One (subspace, face shard) piece of the audit."""

    sub_index: int  # position of the subspace in the audit (fixes the merge order)
    subspace: str
    start: int  # first face (index into the audit's faces)
    stop: int  # one past the last face

    @property
    def n_faces(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        """Checkpoint file stem: ``NNN_<id>.fSSSSSS``."""
        return f"{calibration_name(self.sub_index, self.subspace)}.f{self.start:06d}"


@dataclass
class UnitResult:
    unit: WalkUnit
    walks: pd.DataFrame  # sample, seed, subspace, alpha, score, image_change (subspace and its nulls)
    counterfactuals: pd.DataFrame  # sample, seed, subspace, step, score_before, score_after
    batch: int  # images per batch it finished with (halved on out-of-memory)
    seconds: float = 0.0
    worker: str = "local"


def safe_id(sid: str) -> str:
    """A subspace id as a file-name part."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", sid)


def calibration_name(sub_index: int, subspace: str) -> str:
    return f"{sub_index:03d}_{safe_id(subspace)}"


def plan_units(subspaces: list[Subspace], n_faces: int, shard_faces: int) -> list[WalkUnit]:
    """Every (subspace, face shard) unit, in merge order (``shard_faces`` >= 1: `AuditSettings.check`)."""
    return [WalkUnit(i, sub.id, a, min(a + shard_faces, n_faces))
            for i, sub in enumerate(subspaces) for a in range(0, n_faces, shard_faces)]


def unit_images(unit: WalkUnit, n_alphas: int, n_null: int) -> int:
    """Images a unit's walks render (bisection renders not counted)."""
    return unit.n_faces * (n_alphas + 2 * n_null)


def face_shard(faces: Faces, start: int, stop: int) -> Faces:
    return Faces(seeds=faces.seeds[start:stop], ws=faces.ws[start:stop], psi=faces.psi)


def null_seed(seed: int, sid: str) -> int:
    import zlib

    return (int(seed) * 1_000_003 + zlib.crc32(sid.encode())) % (2**63)


@dataclass
class AuditWork:
    """Everything a worker needs to run any unit of one audit (``batch`` follows any halving)."""

    G: Generator
    classifier: Classifier
    faces: Faces
    subspaces: dict[str, Subspace]
    grids: dict[str, np.ndarray]
    options: WalkOptions
    batch: int


def calibrate(work: AuditWork, sid: str) -> Calibration:
    """The image change of subspace ``sid``'s walk over its range (on the first faces), and each
    null direction's unit scaled to change the image as much (see `match_image_change`)."""
    G, faces, options, score_fn = work.G, work.faces, work.options, work.classifier.decision_score
    sub, alphas = work.subspaces[sid], work.grids[sid]
    first = face_shard(faces, 0, min(CALIBRATION_FACES, len(faces)))
    sub = on_device(sub, first.ws.device)
    ends = alphas[[0, -1]]

    def measure(b: int) -> Calibration:
        def walker_of(s: Subspace) -> Walker:
            return Walker(G, first, s, score_fn, batch_images=b, partial=options.partial)

        target = end_to_end_change(walker_of(sub), ends, n_faces=CALIBRATION_FACES)
        norms = tuple(float(match_image_change(null, walker_of, target, ends).unit_norm)
                      for null in null_directions(sub, options.n_null, seed=null_seed(options.null_seed, sub.id)))
        return Calibration(subspace=sub.id, target=float(target), null_unit_norms=norms)

    return halving_on_oom(measure, work.batch)[0]


def walk_unit(work: AuditWork, unit: WalkUnit, calibration: Calibration,
              advance: Callable[[int], None] | None = None) -> UnitResult:
    """Walk the unit's subspace and its calibrated null directions for the unit's faces; refine
    the counterfactuals of the faces that flip. On CUDA out-of-memory the batch is halved and
    the unit redone (an audit never dies of OOM while one image fits); ``work.batch`` then
    keeps the halved batch for the units after it.

    Args:
        work: the audit's models, faces, subspaces and grids.
        unit: which subspace and face shard.
        calibration: the subspace's image-change target and null units (`calibrate`).
        advance: optional ``advance(images)`` called as batches finish.
    """
    G, faces, options, score_fn = work.G, work.faces, work.options, work.classifier.decision_score
    sub, alphas = work.subspaces[unit.subspace], work.grids[unit.subspace]
    import time

    t0 = time.perf_counter()
    (walks, cfs), work.batch = halving_on_oom(
        lambda b: _walk_unit_once(G, faces, unit, sub, alphas, calibration, score_fn, options, b, advance), work.batch)
    return UnitResult(unit, walks, cfs, work.batch, seconds=time.perf_counter() - t0)


def halving_on_oom(run: Callable[[int], T], batch: int) -> tuple[T, int]:
    """``run(batch)``; on CUDA out-of-memory, the same with half the batch, down to one image.

    Returns:
        What `run` returned, and the batch it succeeded with (later work starts there).

    Raises:
        UserError: one image per batch does not fit either.
    """
    while True:
        try:
            return run(batch), batch
        except torch.cuda.OutOfMemoryError:
            if batch <= 1:
                raise UserError("out of GPU memory even with one image per batch",
                                hint="Free the GPU (another process holds it?), or run with --device cpu.") from None
            batch //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _walk_unit_once(G, faces, unit, sub, alphas, calibration, score_fn, options, batch, advance):
    shard = face_shard(faces, unit.start, unit.stop)
    offset = unit.start
    sub = on_device(sub, shard.ws.device)
    ends = alphas[[0, -1]]
    tick = (lambda k, a: advance(k * a)) if advance is not None else (lambda k, a: None)

    walker = Walker(G, shard, sub, score_fn, batch_images=batch, partial=options.partial)
    scores = walker.grid(alphas, on_batch=lambda k: tick(k, len(alphas)))
    frames = [_long(scores, sub.id, alphas, shard.seeds, calibration.target, offset)]
    nulls = null_directions(sub, options.n_null, seed=null_seed(options.null_seed, sub.id))
    if len(nulls) != len(calibration.null_unit_norms):
        raise UserError(f"calibration of {sub.id} has {len(calibration.null_unit_norms)} null directions, "
                        f"the audit asks for {len(nulls)}: start a new audit directory")
    for null, unit_norm in zip(nulls, calibration.null_unit_norms):
        nw = Walker(G, shard, replace(null, unit_norm=unit_norm), score_fn, batch_images=batch, partial=options.partial)
        frames.append(_long(nw.grid(ends, on_batch=lambda k: tick(k, 2)), null.id, ends, shard.seeds,
                            calibration.target, offset))
    step, after = smallest_flips(walker, alphas, scores, options.threshold, options.bisect_steps)
    before = scores[:, zero_index(alphas)]
    ok = ~np.isnan(step)
    cf = pd.DataFrame({"sample": (np.flatnonzero(ok) + offset).astype(np.int64), "seed": shard.seeds[ok],
                       "subspace": sub.id, "step": step[ok], "score_before": before[ok], "score_after": after[ok]})
    return pd.concat(frames, ignore_index=True), cf


def merge_walks(results: list[UnitResult], subspaces: list[Subspace], n_null: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The units' tables in the fixed order: subspace by subspace, each direction (the
    subspace, then its nulls) over all faces in order, steps in order."""
    by_sub: dict[int, list[UnitResult]] = {}
    for r in results:
        by_sub.setdefault(r.unit.sub_index, []).append(r)
    walks, cfs = [], []
    for i, sub in enumerate(subspaces):
        parts = sorted(by_sub.get(i, []), key=lambda r: r.unit.start)
        if not parts:
            continue
        w = pd.concat([p.walks for p in parts], ignore_index=True)
        order = {sid: k for k, sid in enumerate([sub.id, *(f"null:{sub.id}:{j}" for j in range(n_null))])}
        w = w.assign(_dir=w["subspace"].map(order)).sort_values(["_dir", "sample"], kind="stable")
        walks.append(w.drop(columns="_dir"))
        cfs.append(pd.concat([p.counterfactuals for p in parts], ignore_index=True))
    return pd.concat(walks, ignore_index=True), pd.concat(cfs, ignore_index=True)


def on_device(sub: Subspace, device: torch.device) -> Subspace:
    return replace(sub, basis=sub.basis.to(device))


def _long(scores: np.ndarray, sid: str, alphas: np.ndarray, seeds: np.ndarray, image_change: float,
          offset: int = 0) -> pd.DataFrame:
    n, a = scores.shape
    return pd.DataFrame({
        "sample": np.repeat(np.arange(offset, offset + n, dtype=np.int64), a), "seed": np.repeat(seeds, a),
        "subspace": sid, "alpha": np.tile(alphas, n), "score": scores.reshape(-1),
        # mean |image(hi) - image(lo)| of the subspace's walk (its nulls are matched to it)
        "image_change": np.float64(image_change),
    })
