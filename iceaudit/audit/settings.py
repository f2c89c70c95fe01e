"""What an audit is asked to do: `AuditSettings`, checked before any work."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

from iceaudit.audit.backends import BACKENDS, BackendOptions
from iceaudit.errors import UserError
from iceaudit.memory_format import MEMORY_FORMATS
from iceaudit.precision import PRECISIONS

MAX_FACES = 65_536  # faces per audit: their latents alone are ~2.4 GB at 1024 px (18 × 512 floats each)


@dataclass
class Science:
    """What the audit's numbers depend on (summary.json's settings record them). Those the walks
    depend on are also in the run key a resumed audit must match; the statistics are recomputed."""

    n: int | None = None  # faces; None: 256 on CUDA, 64 on CPU
    seed: int = 0  # faces use seeds seed..seed+n-1; nulls and bootstrap derive from it
    psi: float = 1.0  # truncation (1 = no truncation: the generator's full distribution)
    n_steps: int = 9  # walk grid points over each step_range (0 is added if missing)
    n_null: int = 8  # random directions per subspace (walked to the two ends of its range)
    precision: str = "fp32"  # generator and classifier: fp32, or autocast in bf16 / fp16 (iceaudit.precision)
    bisect_steps: int = 8  # bisection renders per counterfactual crossing
    n_bootstrap: int = 2000
    level: float = 0.05  # family-wise error rate for `significant` (Holm)
    # An effect is called only when it is practically large: it flips at least `min_flip_rate`
    # of the faces within the step range, or walking the whole range moves the score by at
    # least `min_margin_share` of the faces' median distance to the decision threshold (a
    # near-constant classifier can be "statistically" sensitive to everything, by 1e-4).
    min_margin_share: float = 0.5
    min_flip_rate: float = 0.1
    subspaces: list[str] | None = None  # audit only these ids (default: the whole bank)
    sanity: bool = False  # also audit a copy of the classifier with re-initialised weights (doubles the time)
    own_units: bool = True  # measure each walk's own criterion at the audited faces (needs the bank's eyes)
    baselines: list[str] = field(default_factory=list)  # Captum / latent / AttFind methods (parse_methods); [] = none
    parser: Any = None  # face parser (criteria convention: logits + `labels`) for region-level baselines
    tcav_layer: str | None = None  # the classifier layer TCAV reads (a module name; default: its last Conv2d)


@dataclass
class OutputOptions:
    """Where the audit is written and what it shows; none of it changes a number."""

    out: str | Path | None = None  # audit directory; None: compute only
    resume: bool = False
    progress: bool = True
    strip_faces: int = 4  # faces per walk strip image
    strip_subspaces: int = 6  # walk strips for the top drivers (plus every protected subspace)
    n_counterfactual_images: int = 8


@dataclass
class RunContext:
    """Where and how the work runs, and what provenance records about the inputs. Any device,
    batch or backend gives the same numbers (within float rounding), and --resume continues an
    audit on another backend. Units are (subspace, face shard) pieces."""

    device: str = "auto"
    batch_images: int | None = None  # images per generator+classifier batch; None: by device and memory
    partial: bool = True  # partial synthesis (False: full re-synthesis, for benchmarks)
    compile: bool = False  # torch.compile the synthesis and the classifier (iceaudit.compiling); eager if it fails
    memory_format: str = "auto"  # the classifier's: auto | channels_last | contiguous (iceaudit.memory_format)
    shard_faces: int = 64  # faces per walk unit
    backend: str = "local"  # "local" | "ray"
    ray_address: str | None = None  # None: a local Ray instance; "auto" / HOST:PORT: an existing cluster
    workers: int | None = None  # Ray actors (default: one per GPU, or per CPU)
    command: str | None = None  # recorded in provenance
    generator_name: str | None = None
    bank_path: str | None = None
    card_path: str | None = None


_PARTS = {"science": Science, "output": OutputOptions, "run": RunContext}


@dataclass
class AuditSettings:
    """Everything an audit is asked to do, in three parts: the science, the output options and
    the run context. `AuditSettings.of(n=64, out="runs/a")` builds one from flat option names
    (the Python API's and the CLI's), `settings.replace(...)` changes some of them."""

    science: Science = field(default_factory=Science)
    output: OutputOptions = field(default_factory=OutputOptions)
    run: RunContext = field(default_factory=RunContext)

    @staticmethod
    def option_names() -> list[str]:
        """Every flat option name `of` and `replace` accept."""
        return sorted(k for kind in _PARTS.values() for k in kind.__dataclass_fields__)

    @classmethod
    def of(cls, **options: Any) -> "AuditSettings":
        """Settings from flat option names (``n``, ``out``, ``backend``...), each routed to its part."""
        return cls().replace(**options)

    def replace(self, **options: Any) -> "AuditSettings":
        """A copy with the named options changed (flat names, as in `of`)."""
        parts = {name: {} for name in _PARTS}
        for key, value in options.items():
            part = next((name for name, kind in _PARTS.items() if key in kind.__dataclass_fields__), None)
            if part is None:
                raise TypeError(f"unknown audit option {key!r} (known: {', '.join(self.option_names())})")
            parts[part][key] = value
        return AuditSettings(**{name: dc_replace(getattr(self, name), **changes) for name, changes in parts.items()})

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

        whole(self.science.n, "--n", 2, MAX_FACES, none_ok=True)
        whole(self.science.seed, "--seed", 0, 2**32 - (self.science.n or 2))
        real(self.science.psi, "--psi", 0.0, 1.5)
        whole(self.science.n_steps, "--steps", 2, 201)
        whole(self.science.n_null, "--null", 2, 1000)
        whole(self.run.batch_images, "--batch", 1, 65536, none_ok=True)
        whole(self.science.bisect_steps, "bisect_steps", 0, 64)
        whole(self.science.n_bootstrap, "n_bootstrap", 100, 1_000_000)
        real(self.science.level, "level", 1e-9, 0.5)
        real(self.science.min_margin_share, "min_margin_share", 0.0, 100.0)
        real(self.science.min_flip_rate, "min_flip_rate", 0.0, 1.0)
        whole(self.run.shard_faces, "--shard-faces", 1)
        whole(self.run.workers, "--workers", 1, 100_000, none_ok=True)
        if self.science.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)} (got {self.science.precision!r})")
        if not isinstance(self.run.compile, bool):
            raise UserError(f"--compile is a switch: True or False (got {self.run.compile!r})")
        if self.run.memory_format not in MEMORY_FORMATS:
            raise UserError(f"--memory-format must be one of {', '.join(MEMORY_FORMATS)} (got {self.run.memory_format!r})")
        if self.run.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)} (got {self.run.backend!r})")

    def backend_options(self) -> BackendOptions:
        return BackendOptions(kind=self.run.backend, ray_address=self.run.ray_address, workers=self.run.workers)
