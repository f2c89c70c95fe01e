"""The subspace bank on disk: `manifest.json` + `bases.safetensors`. No pickles.

A bank belongs to one generator (its fingerprint). Each subspace names an
interpretable edit in one latent space:

- ``W``:  basis rows live in W (``w_dim``); an edit moves every ws entry.
- ``W+``: basis rows live in W; an edit moves only ws entries
  ``layers = [first, last]`` (inclusive indices into ``num_ws``).
- ``S``:  basis rows live in the packed style vector of ``layers`` (style layer
  names, packed in the generator's ``style_layers`` order); an edit adds the
  matching chunk of the row to each listed layer's styles.

Walks go along the first basis row (the subspace's main direction) in
*semantic units*: ``alpha`` units move the latent by ``alpha * unit_norm``
along that row, where one unit was calibrated to change the target criterion
by ``unit`` (e.g. "1 SD of mean skin luminance across sampled faces"). Steps
stay inside ``step_range``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from iceaudit.errors import UserError

SCHEMA_VERSION = 1
SPACES = ("W", "W+", "S")
MANIFEST = "manifest.json"
BASES = "bases.safetensors"


@dataclass
class Subspace:
    id: str
    name: str
    description: str
    tags: list[str]
    space: str  # one of SPACES
    layers: list[Any]  # W: []; W+: [first, last] ws indices; S: style layer names
    basis: torch.Tensor  # [k, D], orthonormal rows; row 0 is the walk direction
    unit: str  # what one semantic unit means
    unit_norm: float  # latent length of one unit along basis[0]
    step_range: tuple[float, float]  # in units, e.g. (-2.0, 2.0)
    method: str  # "ice", "stylespace", "attribute", "correlation", "regression", "pca", "literature"
    criterion: str
    eigenvalues: list[float] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    verified: bool = True
    # where walks stay faces (measured, `iceaudit.bank.manifold`); audits walk no further
    valid_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise UserError(f"subspace {self.id!r}: space must be one of {SPACES}, not {self.space!r}")
        if self.basis.ndim != 2:
            raise UserError(f"subspace {self.id!r}: basis must be [k, D], got {tuple(self.basis.shape)}")
        self.step_range = (float(self.step_range[0]), float(self.step_range[1]))
        if self.valid_range is not None:
            self.valid_range = (float(self.valid_range[0]), float(self.valid_range[1]))

    @property
    def direction(self) -> torch.Tensor:
        """The walk direction (unit length), shape [D]."""
        return self.basis[0]

    def manifest_entry(self) -> dict[str, Any]:
        entry = asdict(self)
        entry.pop("basis")
        entry["dim"] = int(self.basis.shape[1])
        entry["rank"] = int(self.basis.shape[0])
        entry["step_range"] = list(self.step_range)
        if self.valid_range is None:
            entry.pop("valid_range")
        else:
            entry["valid_range"] = list(self.valid_range)
        return entry

    @property
    def walk_range(self) -> tuple[float, float]:
        """The steps an audit walks: the step range, clipped to the measured valid range."""
        if self.valid_range is None:
            return self.step_range
        return max(self.step_range[0], self.valid_range[0]), min(self.step_range[1], self.valid_range[1])


@dataclass
class Bank:
    name: str
    generator_fingerprint: str
    subspaces: list[Subspace]
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, subspace_id: str) -> Subspace:
        for s in self.subspaces:
            if s.id == subspace_id:
                return s
        known = ", ".join(s.id for s in self.subspaces)
        raise UserError(f"bank {self.name!r} has no subspace {subspace_id!r} (it has: {known})")

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.subspaces]

    def check_generator(self, fingerprint: str) -> None:
        if fingerprint != self.generator_fingerprint:
            raise UserError(
                f"bank {self.name!r} was built for generator {self.generator_fingerprint[:16]}…, "
                f"not for this one ({fingerprint[:16]}…). Rebuild it with `iceaudit bank build`."
            )


def save_bank(bank: Bank, directory: str | Path) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": bank.name,
        "generator_fingerprint": bank.generator_fingerprint,
        "meta": bank.meta,
        "subspaces": [s.manifest_entry() for s in bank.subspaces],
    }
    from iceaudit.atomic import atomic_path

    tensors = {s.id: s.basis.detach().to(torch.float32).contiguous().cpu() for s in bank.subspaces}
    text = json.dumps(manifest, indent=2, default=float) + "\n"
    with atomic_path(directory / BASES) as tmp:
        save_file(tensors, str(tmp))
    with atomic_path(directory / MANIFEST) as tmp:
        tmp.write_text(text)
    return directory


MAX_MANIFEST_BYTES = 64 << 20
ORTHONORMAL_TOL = 1e-3  # max |B Bᵀ − I|: float32 bases from an orthonormalisation are ~1e-6
_TOP_KEYS = {"schema_version", "name", "generator_fingerprint", "meta", "subspaces"}
_ENTRY_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "name": (str,), "description": (str,), "tags": (list,), "space": (str,), "layers": (list,),
    "unit": (str,), "unit_norm": (int, float), "step_range": (list,), "method": (str,), "criterion": (str,),
    "dim": (int,), "rank": (int,),
}
_ENTRY_OPTIONAL: dict[str, tuple[type, ...]] = {"eigenvalues": (list,), "validation": (dict,), "verified": (bool,),
                                                 "valid_range": (list,)}


def check_manifest(manifest: Any, where: str | Path) -> None:
    """The manifest's structure, types and ranges, each fault named with its subspace."""
    import math

    if not isinstance(manifest, dict):
        raise UserError(f"{where}: a bank manifest is a JSON object, not a {type(manifest).__name__}")
    unknown = sorted(set(manifest) - _TOP_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_TOP_KEYS))})")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"{where}: bank schema version {manifest.get('schema_version')!r} is not supported "
            f"(this iceaudit reads version {SCHEMA_VERSION})"
        )
    for key in ("name", "generator_fingerprint"):
        if not isinstance(manifest.get(key), str):
            raise UserError(f"{where}: {key} must be a string")
    if not isinstance(manifest.get("meta", {}), dict):
        raise UserError(f"{where}: meta must be an object")
    entries = manifest.get("subspaces")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{where}: subspaces must be a non-empty list (the bank has no subspaces)")
    seen: set[str] = set()
    for k, entry in enumerate(entries):
        label = f"{where}: subspace #{k + 1}"
        if not isinstance(entry, dict):
            raise UserError(f"{label} is not an object")
        if isinstance(entry.get("id"), str):
            label = f"{where}: subspace {entry['id']!r}"
        missing = [key for key in _ENTRY_TYPES if key not in entry]
        if missing:
            raise UserError(f"{label} lacks {', '.join(missing)}")
        unknown = sorted(set(entry) - set(_ENTRY_TYPES) - set(_ENTRY_OPTIONAL))
        if unknown:
            raise UserError(f"{label}: unknown key(s) {', '.join(unknown)}")
        for key, types in {**_ENTRY_TYPES, **_ENTRY_OPTIONAL}.items():
            value = entry.get(key)
            if key in entry and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
                raise UserError(f"{label}: {key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
        if entry["id"] in seen:
            raise UserError(f"{label}: the id appears twice")
        seen.add(entry["id"])
        if entry["space"] not in SPACES:
            raise UserError(f"{label}: space must be one of {', '.join(SPACES)}, not {entry['space']!r}")
        if entry["dim"] < 1 or entry["rank"] < 1 or entry["rank"] > entry["dim"]:
            raise UserError(f"{label}: dim {entry['dim']} and rank {entry['rank']} must satisfy 1 <= rank <= dim")
        if not (math.isfinite(entry["unit_norm"]) and entry["unit_norm"] > 0):
            raise UserError(f"{label}: unit_norm must be a finite number > 0, got {entry['unit_norm']!r}")
        sr = entry["step_range"]
        if len(sr) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in sr):
            raise UserError(f"{label}: step_range must be two finite numbers [low, high], got {sr!r}")
        if not sr[0] < sr[1]:
            raise UserError(f"{label}: step_range {sr!r} is empty or reversed (low must be below high)")
        vr = entry.get("valid_range")
        if vr is not None and not (len(vr) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                        and math.isfinite(v) for v in vr) and vr[0] <= 0 <= vr[1]):
            raise UserError(f"{label}: valid_range must be two finite numbers [low <= 0, high >= 0], got {vr!r}")


def _check_orthonormal(basis: torch.Tensor, sid: str, where: str | Path) -> None:
    b = basis.double()
    if not torch.isfinite(b).all():
        raise UserError(f"{where}: basis {sid!r} holds NaN or infinite values")
    err = float((b @ b.T - torch.eye(b.shape[0], dtype=b.dtype)).abs().max())
    if err > ORTHONORMAL_TOL:
        what = "is all zeros" if float(b.abs().max()) == 0.0 else f"rows are not orthonormal (max |B Bᵀ − I| = {err:.3g})"
        raise UserError(f"{where}: basis {sid!r} {what}; walks along it would not be in the calibrated units",
                        hint="Rebuild the bank with `iceaudit bank build`.")


def load_bank(directory: str | Path) -> Bank:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    mpath, bpath = directory / MANIFEST, directory / BASES
    for p in (mpath, bpath):
        if not p.is_file():
            raise UserError(f"not a subspace bank: {p} is missing")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise UserError(f"{mpath}: {mpath.stat().st_size} bytes is too large for a bank manifest "
                        f"(at most {MAX_MANIFEST_BYTES})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{mpath}: not valid JSON ({err})") from None
    except RecursionError:
        raise UserError(f"{mpath}: nested too deeply to be a bank manifest") from None
    check_manifest(manifest, mpath)
    try:
        tensors = load_file(str(bpath))
    except (SafetensorError, OSError) as err:
        raise UserError(f"{bpath}: not a readable safetensors file ({err})") from None
    subspaces = []
    for entry in manifest["subspaces"]:
        entry = dict(entry)
        dim, rank = entry.pop("dim"), entry.pop("rank")
        sid = entry["id"]
        if sid not in tensors:
            raise UserError(f"{bpath}: no basis for subspace {sid!r}")
        basis = tensors[sid]
        if tuple(basis.shape) != (rank, dim):
            raise UserError(f"{bpath}: basis {sid!r} has shape {tuple(basis.shape)}, manifest says {(rank, dim)}")
        _check_orthonormal(basis, sid, bpath)
        entry["step_range"] = tuple(entry["step_range"])
        subspaces.append(Subspace(basis=basis, **entry))
    return Bank(
        name=manifest["name"],
        generator_fingerprint=manifest["generator_fingerprint"],
        subspaces=subspaces,
        meta=manifest.get("meta", {}),
    )
