"""Whether two audits can be compared, driver by driver (a gate's --baseline, a diff).

Two audits measure the same quantities only when they walked the same subspaces
(the bank's content), through the same generator, over the same step grid and
truncation: otherwise a change of slope or flip rate says nothing about the
classifier. Other faces (face seed, N) leave the slopes comparable as estimates,
but unpaired and of another precision: a warning, not a refusal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# aspect -> (how to read it from a summary, whether a difference forbids the comparison)
_ASPECTS: dict[str, tuple[Callable[[dict[str, Any]], Any], bool]] = {
    "generator": (lambda s: (s.get("generator") or {}).get("fingerprint"), True),
    "bank": (lambda s: (s.get("bank") or {}).get("hash"), True),
    "step grid": (lambda s: _grids(s), True),
    "truncation psi": (lambda s: (s.get("settings") or {}).get("psi"), True),
    "face seed": (lambda s: (s.get("settings") or {}).get("seed"), False),
    "number of faces": (lambda s: (s.get("settings") or {}).get("n_samples"), False),
}


def _grids(summary: dict[str, Any]) -> dict[str, tuple[float, ...]] | None:
    """Each subspace's walk grid (alphas), from the bank entries or the shared settings grid."""
    per = {b["id"]: tuple(b["alphas"]) for b in (summary.get("bank") or {}).get("subspaces", []) if b.get("alphas")}
    if per:
        return per
    alphas = (summary.get("settings") or {}).get("alphas")
    if isinstance(alphas, dict):
        return {k: tuple(v) for k, v in alphas.items()}
    if isinstance(alphas, list):
        return {"*": tuple(alphas)}
    return None


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > 16:
        return value[:12] + "…"
    if isinstance(value, dict):
        grids = {tuple(v) for v in value.values()}
        if len(grids) == 1:
            g = next(iter(grids))
            return f"{len(g)} steps {g[0]:+g}..{g[-1]:+g}"
        return f"{len(value)} per-subspace grids"
    return str(value)


@dataclass(frozen=True)
class Difference:
    """One way in which two audits differ."""

    aspect: str  # "generator", "bank", "step grid", "truncation psi", "face seed", "number of faces"
    new: Any
    old: Any
    blocking: bool  # True: the two audits' numbers measure different things

    def describe(self) -> str:
        if self.aspect == "step grid" and isinstance(self.new, dict) and isinstance(self.old, dict):
            shared = sorted(set(self.new) & set(self.old))
            differ = [k for k in shared if self.new[k] != self.old[k]]
            if differ:
                k = differ[0]
                return (f"step grid differs for {len(differ)} subspace(s), e.g. {k}: {_short({k: self.new[k]})} "
                        f"vs {_short({k: self.old[k]})} in the baseline")
        return f"{self.aspect} differs ({_short(self.new)} vs {_short(self.old)} in the baseline)"


def differences(new: dict[str, Any], old: dict[str, Any]) -> list[Difference]:
    """What makes `new` and `old` (two summary.json records) not comparable, aspect by aspect.

    An aspect that either summary does not record is not compared.

    Args:
        new: the audit under test.
        old: the baseline audit.
    """
    found = []
    for aspect, (read, blocking) in _ASPECTS.items():
        a, b = read(new), read(old)
        if a is None or b is None:
            continue
        if aspect == "step grid":
            shared = set(a) & set(b)
            if all(a[k] == b[k] for k in shared) and ("*" not in a) == ("*" not in b):
                continue
            if "*" in a or "*" in b:  # one records a shared grid, the other per subspace
                ga = set(a.values())
                gb = set(b.values())
                if ga == gb:
                    continue
        elif a == b:
            continue
        found.append(Difference(aspect, a, b, blocking))
    return found
