"""What an audit is asked to do: `AuditSettings`, checked before any work."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iceaudit.audit.backends import BACKENDS, BackendOptions
from iceaudit.errors import UserError
from iceaudit.precision import PRECISIONS

MAX_FACES = 65_536  # faces per audit: their latents alone are ~2.4 GB at 1024 px (18 × 512 floats each)


@dataclass
class AuditSettings:
    n: int | None = None  # faces; None: 256 on CUDA, 64 on CPU
    seed: int = 0  # faces use seeds seed..seed+n-1; nulls and bootstrap derive from it
    psi: float = 1.0  # truncation (1 = no truncation: the generator's full distribution)
    n_steps: int = 9  # walk grid points over each step_range (0 is added if missing)
    n_null: int = 8  # random directions per subspace (walked to the two ends of its range)
    device: str = "auto"
    batch_images: int | None = None  # images per generator+classifier batch; None: by device and resolution
    precision: str = "fp32"  # generator and classifier: fp32, or autocast in bf16 / fp16 (iceaudit.precision)
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
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)} (got {self.backend!r})")

    def backend_options(self) -> BackendOptions:
        return BackendOptions(kind=self.backend, ray_address=self.ray_address, workers=self.workers)
