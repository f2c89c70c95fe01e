"""Bank recipes: TOML files that list the subspaces to discover and how.

See `iceaudit/bank/recipes/*.toml` for complete examples. A recipe has a
``[bank]`` table (name, faces, seeds), an ``[eyes]`` table (which landmark model and
parser kind the criteria use), optional ``[validation]`` thresholds and
``[stylespace.regions]`` groups, and one ``[[subspace]]`` table per subspace.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iceaudit.errors import UserError
from iceaudit.validation import read_record

METHODS = ("ice", "stylespace", "attribute", "correlation", "regression", "pca", "literature")
RECIPE_DIR = Path(__file__).parent / "recipes"


@dataclass
class SubspaceRecipe:
    id: str
    name: str
    description: str
    method: str
    tags: list[str] = field(default_factory=list)
    space: str = "S"
    layers: list[Any] = field(default_factory=list)
    criterion: dict[str, Any] | None = None
    suppress: list[Any] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    max_rank: int = 8
    step_range: tuple[float, float] = (-2.0, 2.0)
    truth_factor: str | None = None
    verified: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # method-specific: channels, region, dims, component...


@dataclass
class Recipe:
    path: str
    name: str
    description: str
    bank: dict[str, Any]
    eyes: dict[str, Any]
    validation: dict[str, float]
    regions: dict[str, list[str]]
    subspaces: list[SubspaceRecipe]

    def setting(self, key: str, default: Any) -> Any:
        return self.bank.get(key, default)


_KNOWN = {"id", "name", "description", "method", "tags", "space", "layers", "criterion", "suppress",
          "thresholds", "max_rank", "step_range", "truth_factor", "verified"}


def find_recipe(name_or_path: str) -> Path:
    """A recipe path, or the name of a shipped one (``ffhq``, ``facelab``, ``ffhq-stylespace``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for cand in (RECIPE_DIR / f"{name_or_path}.toml", RECIPE_DIR / p.name):
        if cand.is_file():
            return cand
    shipped = ", ".join(sorted(q.stem for q in RECIPE_DIR.glob("*.toml")))
    raise UserError(f"recipe {name_or_path!r} not found (not a file, and not a shipped recipe: {shipped})")


def load_recipe(name_or_path: str) -> Recipe:
    path = find_recipe(name_or_path)
    data = read_record(path, "recipe", "toml")
    bank = dict(data.get("bank", {}))
    if "name" not in bank:
        raise UserError(f"{path}: [bank] needs a name")
    subs = []
    seen = set()
    for i, entry in enumerate(data.get("subspace", [])):
        where = f"{path}: subspace #{i + 1}"
        for key in ("id", "name", "description", "method"):
            if key not in entry:
                raise UserError(f"{where} needs `{key}`")
        if entry["id"] in seen:
            raise UserError(f"{where}: duplicate id {entry['id']!r}")
        seen.add(entry["id"])
        if entry["method"] not in METHODS:
            raise UserError(f"{where} ({entry['id']}): method must be one of {', '.join(METHODS)}")
        if entry["method"] in ("ice", "stylespace", "attribute", "correlation", "regression") and "criterion" not in entry:
            raise UserError(f"{where} ({entry['id']}): method {entry['method']} needs a `criterion`")
        known = {k: entry[k] for k in _KNOWN if k in entry}
        options = {k: v for k, v in entry.items() if k not in _KNOWN}
        if "step_range" in known:
            known["step_range"] = tuple(float(v) for v in known["step_range"])
        subs.append(SubspaceRecipe(**known, options=options))
    if not subs:
        raise UserError(f"{path}: no [[subspace]] entries")
    return Recipe(
        path=str(path), name=bank["name"], description=bank.get("description", ""), bank=bank,
        eyes=dict(data.get("eyes", {})), validation=dict(data.get("validation", {})),
        regions={k: list(v) for k, v in data.get("stylespace", {}).get("regions", {}).items()},
        subspaces=subs,
    )
