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
    method: str  # "ice", "stylespace", "correlation", "pca", "literature"
    criterion: str
    eigenvalues: list[float] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    verified: bool = True

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise UserError(f"subspace {self.id!r}: space must be one of {SPACES}, not {self.space!r}")
        if self.basis.ndim != 2:
            raise UserError(f"subspace {self.id!r}: basis must be [k, D], got {tuple(self.basis.shape)}")
        self.step_range = (float(self.step_range[0]), float(self.step_range[1]))

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
        return entry


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


def load_bank(directory: str | Path) -> Bank:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    mpath, bpath = directory / MANIFEST, directory / BASES
    for p in (mpath, bpath):
        if not p.is_file():
            raise UserError(f"not a subspace bank: {p} is missing")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{mpath}: not valid JSON ({err})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"{mpath}: bank schema version {manifest.get('schema_version')!r} is not supported "
            f"(this iceaudit reads version {SCHEMA_VERSION})"
        )
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
        entry["step_range"] = tuple(entry["step_range"])
        subspaces.append(Subspace(basis=basis, **entry))
    return Bank(
        name=manifest["name"],
        generator_fingerprint=manifest["generator_fingerprint"],
        subspaces=subspaces,
        meta=manifest.get("meta", {}),
    )
