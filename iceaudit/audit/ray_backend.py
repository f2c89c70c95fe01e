"""The Ray backend: the audit's units on a pool of Ray actors.

Each actor receives the generator, the classifier and the faces once (through Ray's
object store), builds them on its device (one GPU per actor, or one CPU slot) and then
runs calibrations and walk units on request, returning their score tables. The driver
keeps every actor busy with `ray.util.ActorPool`, takes results in the order they
finish, and writes and merges them itself (`iceaudit.audit.runner`), so the merged
result does not depend on which actor ran what.

Ray Core actors rather than Ray Data: the units are few and coarse (a subspace × a
face shard, seconds to minutes each), every one needs the same two large models held
in memory, and a result is a small table — an actor pool is the whole scheduler, and
keeping the merge on the driver keeps the output order fixed.

Faults: an actor whose process dies is restarted by Ray (it rebuilds its models) and
the unit it held is re-run (``max_restarts`` / ``max_task_retries``); units are pure
functions of their inputs, so the re-run gives the same table.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import torch

from iceaudit.audit.portable import PortableClassifier, check_picklable, portable_generator
from iceaudit.audit.sample import Faces
from iceaudit.audit.units import AuditWork, Calibration, UnitResult, WalkUnit, calibrate, unit_images, walk_unit
from iceaudit.errors import UserError

MAX_RESTARTS = 3  # per actor: a unit that kills its worker this often is reported, not retried forever


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray", hint="pip install 'iceaudit[ray]'") from None
    return ray


def connect(address: str | None, workers: int | None) -> bool:
    """Join the Ray cluster at ``address`` (``auto``, HOST:PORT), or start a local instance with
    ``workers`` CPUs when there is none. Returns whether this call started it."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                              "configure_logging": False}
    if address:
        _check_reachable(address)
        kwargs["address"] = address
    elif workers:
        kwargs["num_cpus"] = max(int(workers), 1)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise UserError(f"--ray-address {address}: cannot connect to a Ray cluster ({err})",
                        hint="Start one with `ray start --head`, or leave --ray-address out for a local instance.") from None
    return True


def preflight(address: str | None) -> None:
    """Before any work: Ray is installed, and a HOST:PORT given answers."""
    import_ray()
    if address:
        _check_reachable(address)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT that does not answer is refused now (Ray itself would retry for minutes)."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address must be `auto` or HOST:PORT (got {address!r})")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise UserError(f"--ray-address {address}: no Ray cluster answers there ({err.strerror or err})",
                        hint="Start one with `ray start --head` (it prints the address), or leave "
                             "--ray-address out for a local instance.") from None


class _AuditWorker:
    """One Ray actor: the models on its device, and the unit functions."""

    def __init__(self, label: str, refs: list) -> None:
        # The models come as object refs inside a list, fetched here: Ray then keeps them owned
        # by the driver (alive for a restart) instead of treating them as constructor arguments.
        import ray

        generator, classifier, faces, work = ray.get(refs)
        gpus = [int(g) for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip().isdigit()]
        self.device = torch.device("cuda" if work["device"] == "cuda" and torch.cuda.is_available() and gpus else "cpu")
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, work["threads"]))
        self.label = label
        self.G = generator.to(self.device).eval()
        for p in self.G.parameters():
            p.requires_grad_(False)
        if self.G.fingerprint() != work["fingerprint"]:
            raise UserError(f"Ray worker {label}: the generator it received differs from the audited one")
        self.classifier = classifier.restore(self.device)
        self.faces = Faces(seeds=faces.seeds, ws=faces.ws.to(self.device), psi=faces.psi)
        self.work = AuditWork(G=self.G, classifier=self.classifier, faces=self.faces, subspaces=work["subspaces"],
                              grids=work["grids"], options=work["options"], batch=work["batch"])

    def calibrate(self, sid: str) -> Calibration:
        return calibrate(self.work, sid)

    def walk(self, unit: WalkUnit, calibration: Calibration) -> UnitResult:
        result = walk_unit(self.work, unit, calibration)
        result.worker = self.label
        return result

    def pid(self) -> int:
        return os.getpid()


class RayBackend:
    """Runs units on ``workers`` Ray actors (one per GPU when the audit is on CUDA)."""

    def __init__(self, work: AuditWork, address: str | None = None, workers: int | None = None) -> None:
        ray = import_ray()
        from ray.util import ActorPool

        if workers is not None and workers < 1:
            raise UserError(f"--workers must be at least 1 (got {workers})")
        device = work.faces.ws.device.type
        # CPU kernels round differently with another thread count, so each actor uses as many
        # threads as this process (and reserves that many CPUs): the same numbers as local.
        threads = torch.get_num_threads() if device == "cpu" else 1
        self.started = connect(address, workers * threads if workers else None)
        resources = ray.cluster_resources()
        if device == "cuda":
            self.workers = workers or max(1, int(resources.get("GPU", 0)))
            per_actor = {"num_gpus": 1, "num_cpus": 1}
            if resources.get("GPU", 0) < 1:
                raise UserError("the audit runs on CUDA but the Ray cluster has no GPU", hint="Use --device cpu.")
        else:
            self.workers = workers or max(1, int(resources.get("CPU", 1)) // threads)
            per_actor = {"num_cpus": threads}
            if resources.get("CPU", 0) < threads:
                raise UserError(f"each Ray worker needs {threads} CPUs (this process's torch threads) but the "
                                f"cluster has {resources.get('CPU', 0):g}",
                                hint="Set OMP_NUM_THREADS (or torch.set_num_threads) lower for the audit.")
        portable = PortableClassifier.of(work.classifier)
        if portable.form == "object":
            check_picklable(portable.payload, "classifier")
        faces = Faces(seeds=work.faces.seeds, ws=work.faces.ws.cpu(), psi=work.faces.psi)
        shared = {
            "device": device, "threads": threads, "fingerprint": work.G.fingerprint(), "options": work.options,
            "batch": work.batch, "grids": work.grids,
            "subspaces": {sid: _cpu(s) for sid, s in work.subspaces.items()},
        }
        refs = [ray.put(portable_generator(work.G)), ray.put(portable), ray.put(faces), ray.put(shared)]
        actor = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS, **per_actor)(_AuditWorker)
        self._refs = refs  # kept alive: a restarted actor is rebuilt from them
        self.actors = [actor.remote(f"w{i}", refs) for i in range(self.workers)]
        self.pool = ActorPool(self.actors)
        self.grids, self.n_null = work.grids, work.options.n_null

    def calibrate(self, subspace_ids: list[str]) -> Iterator[Calibration]:
        for sid in subspace_ids:
            self.pool.submit(lambda a, s: a.calibrate.remote(s), sid)
        while self.pool.has_next():
            yield self._next()

    def walk(self, units: list[WalkUnit], calibrations: dict[str, Calibration],
             on_images: Callable[[int], None]) -> Iterator[UnitResult]:
        for unit in units:
            self.pool.submit(lambda a, u: a.walk.remote(u, calibrations[u.subspace]), unit)
        while self.pool.has_next():
            result = self._next()
            sid = result.unit.subspace
            on_images(unit_images(result.unit, len(self.grids[sid]), self.n_null))
            yield result

    def _next(self):
        ray = import_ray()
        try:
            return self.pool.get_next_unordered()
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, UserError):
                raise UserError(cause.message, hint=cause.hint) from None
            raise
        except ray.exceptions.RayActorError as err:
            raise UserError(f"a Ray worker died {MAX_RESTARTS + 1} times running the same unit of work "
                            f"({type(err).__name__}); see the Ray logs (/tmp/ray/session_latest/logs)") from None

    def close(self) -> None:
        ray = import_ray()
        for a in self.actors:
            ray.kill(a)
        self.actors = []
        if self.started:
            ray.shutdown()


def _cpu(sub):
    from dataclasses import replace

    return replace(sub, basis=sub.basis.cpu())
