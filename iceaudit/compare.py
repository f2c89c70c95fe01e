"""Whether two audits can be compared, driver by driver (a gate's --baseline, a diff).

Two audits measure the same quantities only when they walked the same subspaces
(the bank's content), through the same generator, over the same step grid and
truncation: otherwise a change of slope or flip rate says nothing about the
classifier. Other faces (face seed, N) leave the slopes comparable as estimates,
but unpaired and of another precision: a warning, not a refusal.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from iceaudit.record import AuditRecord, Driver

# aspect -> (how to read it from a record, whether a difference forbids the comparison)
_ASPECTS: dict[str, tuple[Callable[[AuditRecord], Any], bool]] = {
    "generator": (lambda r: r.generator and r.generator.fingerprint, True),
    "bank": (lambda r: r.bank and r.bank.hash, True),
    "step grid": (lambda r: _grids(r), True),
    "truncation psi": (lambda r: r.settings and r.settings.psi, True),
    "face seed": (lambda r: r.settings and r.settings.seed, False),
    "number of faces": (lambda r: r.settings and r.settings.n_samples, False),
}


def _grids(record: AuditRecord) -> dict[str, tuple[float, ...]] | None:
    """Each subspace's walk grid (alphas), from the bank entries or the shared settings grid."""
    per = {b.id: tuple(b.alphas) for b in (record.bank.subspaces if record.bank else []) if b.alphas}
    if per:
        return per
    alphas = record.settings.alphas if record.settings else None
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


def differences(new: AuditRecord, old: AuditRecord) -> list[Difference]:
    """What makes `new` and `old` (two audit records) not comparable, aspect by aspect.

    An aspect that either record does not hold is not compared.

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


@dataclass(frozen=True)
class DriverChange:
    """One subspace measured by both audits: what it was and what it is."""

    subspace: str
    name: str
    protected: bool
    old: Driver  # the baseline's driver record
    new: Driver

    @property
    def abs_slope_increase(self) -> float:
        return abs(self.new.slope) - abs(self.old.slope)

    @property
    def flip_rate_increase(self) -> float:
        return self.new.flip_rate - self.old.flip_rate

    def flip_rates(self) -> str:
        return f"{100 * self.old.flip_rate:.0f}% → {100 * self.new.flip_rate:.0f}%"

    @property
    def significance(self) -> str:
        """``"became significant"``, ``"no longer significant"``, or ``"unchanged"``."""
        was, now = self.old.significant, self.new.significant
        return "unchanged" if was == now else "became significant" if now else "no longer significant"

    def to_dict(self) -> dict[str, Any]:
        keys = ("slope", "ci_low", "ci_high", "flip_rate", "significant")
        return {"subspace": self.subspace, "name": self.name, "protected": self.protected,
                "old": {k: asdict(self.old)[k] for k in keys}, "new": {k: asdict(self.new)[k] for k in keys},
                "abs_slope_increase": self.abs_slope_increase, "flip_rate_increase": self.flip_rate_increase,
                "significance": self.significance}


@dataclass(frozen=True)
class AuditDiff:
    """What changed between two audits (a baseline and a candidate release)."""

    differences: list[Difference]  # how the audits themselves differ (comparability)
    changes: list[DriverChange]  # subspaces in both, strongest |slope| change first
    only_new: list[str]  # subspaces measured only by the new audit
    only_old: list[str]

    @property
    def newly_significant_protected(self) -> list[str]:
        return [c.subspace for c in self.changes if c.protected and c.significance == "became significant"]

    @property
    def comparable(self) -> bool:
        return not any(d.blocking for d in self.differences)

    def differences_text(self) -> list[str]:
        return [d.describe() for d in self.differences]

    def to_dict(self) -> dict[str, Any]:
        return {"comparable": self.comparable, "differences": self.differences_text(),
                "newly_significant_protected": self.newly_significant_protected,
                "only_new": self.only_new, "only_old": self.only_old,
                "changes": [c.to_dict() for c in self.changes]}


def diff(new: AuditRecord, old: AuditRecord) -> AuditDiff:
    """Compare two audit records, subspace by subspace.

    Args:
        new: the candidate audit.
        old: the baseline audit.
    """
    before = {d.subspace: d for d in old.drivers}
    after = {d.subspace: d for d in new.drivers}
    protected = set(new.protected)
    changes = [DriverChange(sid, after[sid].name, sid in protected, before[sid], after[sid])
               for sid in after if sid in before]
    changes.sort(key=lambda c: (-abs(c.abs_slope_increase), c.subspace))
    return AuditDiff(differences=differences(new, old), changes=changes,
                     only_new=sorted(set(after) - set(before)), only_old=sorted(set(before) - set(after)))


def slope_with_ci(d: Driver) -> str:
    """"+0.123 [+0.1, +0.15]": a driver's slope and its 95% interval."""
    return f"{d.slope:+.3g} [{d.ci_low:+.3g}, {d.ci_high:+.3g}]"


def diff_html(d: AuditDiff, old_label: str, new_label: str) -> str:
    """The diff as one self-contained HTML section (a table), for a page or a report."""
    from html import escape

    ci = slope_with_ci
    rows = "".join(
        f"<tr data-subspace=\"{escape(c.subspace)}\"><td>{escape(c.name)}{' (protected)' if c.protected else ''}</td>"
        f"<td>{ci(c.old)}</td><td>{ci(c.new)}</td><td>{c.abs_slope_increase:+.3g}</td>"
        f"<td>{c.flip_rates()}</td>"
        f"<td>{escape(c.significance)}</td></tr>" for c in d.changes)
    notes = "".join(f"<li>{escape(x)}</li>" for x in d.differences_text())
    alarm = (f"<p class=\"alarm\">Newly significant protected attributes: "
             f"{escape(', '.join(d.newly_significant_protected))}</p>" if d.newly_significant_protected else "")
    return (f"<section id=\"diff\"><h2>What changed: {escape(old_label)} → {escape(new_label)}</h2>{alarm}"
            + (f"<ul class=\"diff-notes\">{notes}</ul>" if notes else "")
            + "<table class=\"diff\"><thead><tr><th>subspace</th><th>slope, baseline [95% CI]</th>"
              "<th>slope, new [95% CI]</th><th>|slope| change</th><th>flip rate</th><th>significance</th>"
              f"</tr></thead><tbody>{rows}</tbody></table></section>")
