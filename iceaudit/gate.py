"""The CI gate: hold an audit's summary.json to a policy file.

A policy is TOML. Every key is optional except that each rule must name its
subjects (``subspace = "id"`` or ``tag = "protected"``) and at least one check::

    name = "fairness"
    description = "Protected attributes must not drive the decision."

    [[rule]]                       # limits on what the audit measured
    name = "protected attributes are not drivers"   # optional
    tag = "protected"              # every subspace with this tag (or: subspace = "skin_tone")
    must_not_be_significant = true # no effect on the decision (tested over faces, practically large)
    must_not_be_beyond_random = true  # no effect larger than random edits of the same visual size
    max_abs_slope = 0.05           # |score change per semantic unit|
    max_flip_rate = 0.10           # share of faces whose decision flips within range

    [[require]]                    # drivers the classifier must have
    subspace = "smile"
    must_be_significant = true     # default true
    must_be_beyond_random = true   # and specific to it: larger than random edits of its visual size
    min_abs_slope = 0.05

    [baseline]                     # against the previous release's summary (--baseline)
    max_abs_slope_increase = 0.02  # per driver: |slope| new - |slope| old
    max_flip_rate_increase = 0.05
    tag = "protected"              # optional scope (or subspace = ...); default every driver
    required = false               # true: refuse to run without --baseline
    allow_incomparable = false     # true: warn, not refuse, when the audits are not comparable

Before a baseline is compared, the two audits are checked to be comparable
(`iceaudit.compare`): another generator, bank content, step grid or truncation
refuses the comparison (exit 2, naming each difference) unless
``allow_incomparable = true``; other faces (face seed, N) are a warning.

Each rule applied to one subject (a subspace) is one outcome — a JUnit
testcase. Exit codes of the CLI: 0 every outcome passed (skipped ones do not
fail), 1 at least one failed, 2 bad input (a policy error names its line).
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from iceaudit.errors import UserError
from iceaudit.record import AuditRecord, Driver, load_record
from iceaudit.validation import parse_record, read_text

# key -> (expected kind, description); kinds: "str", "bool", "number", "rate"
_TOP_KEYS = {"name": "str", "description": "str", "rule": "tables", "require": "tables", "baseline": "table"}
_RULE_KEYS = {"name": "str", "subspace": "str", "tag": "str", "must_not_be_significant": "bool",
              "must_not_be_beyond_random": "bool", "max_abs_slope": "number", "max_flip_rate": "rate"}
_REQUIRE_KEYS = {"name": "str", "subspace": "str", "tag": "str", "must_be_significant": "bool",
                 "must_be_beyond_random": "bool", "min_abs_slope": "number", "min_flip_rate": "rate"}
_BASELINE_KEYS = {"name": "str", "subspace": "str", "tag": "str", "required": "bool", "allow_incomparable": "bool",
                  "max_abs_slope_increase": "number", "max_flip_rate_increase": "rate"}
_KIND_WORDS = {"str": "a string", "bool": "true or false", "number": "a number >= 0",
               "rate": "a number between 0 and 1", "table": "a table", "tables": "an array of tables ([[...]])"}


@dataclass
class Rule:
    """One policy entry: which subspaces (``subspace`` or ``tag``) and which limits."""

    kind: str  # "rule", "require" or "baseline"
    name: str
    subspace: str | None = None
    tag: str | None = None
    checks: dict[str, Any] = field(default_factory=dict)  # check key -> limit
    line: int | None = None
    required: bool = False  # baseline only: refuse to run without --baseline
    allow_incomparable: bool = False  # baseline only: warn instead of refusing an incomparable baseline


@dataclass
class Policy:
    name: str
    description: str
    rules: list[Rule]
    path: str = ""


@dataclass
class CheckResult:
    check: str  # e.g. "max_abs_slope"
    value: float | bool | None
    limit: float | bool
    passed: bool
    message: str


@dataclass
class Outcome:
    """One rule applied to one subspace: a JUnit testcase."""

    rule: str
    kind: str
    subject: str
    passed: bool
    skipped: bool = False
    message: str = ""
    checks: list[CheckResult] = field(default_factory=list)


@dataclass
class GateResult:
    policy: str
    audit: str
    baseline: str | None
    outcomes: list[Outcome]
    warnings: list[str] = field(default_factory=list)  # e.g. the baseline used other faces

    @property
    def passed(self) -> bool:
        return all(o.passed or o.skipped for o in self.outcomes)

    @property
    def counts(self) -> dict[str, int]:
        failed = sum(1 for o in self.outcomes if not o.passed and not o.skipped)
        skipped = sum(1 for o in self.outcomes if o.skipped)
        return {"total": len(self.outcomes), "passed": len(self.outcomes) - failed - skipped,
                "failed": failed, "skipped": skipped}

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "policy": self.policy, "audit": self.audit, "baseline": self.baseline,
                "counts": self.counts, "warnings": list(self.warnings), "outcomes": [asdict(o) for o in self.outcomes]}


# --- reading a policy ------------------------------------------------------------


class _Lines:
    """Line numbers of tables and keys in a TOML text (for error messages)."""

    _header = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.\-\"]+)\s*\]")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")

    def __init__(self, text: str) -> None:
        self.at: dict[tuple[str, int, str | None], int] = {}
        table, index, counts = "", 0, {}
        for n, raw in enumerate(text.splitlines(), start=1):
            if m := self._header.match(raw):
                table = m.group(2).strip('"')
                index = counts.get(table, 0) if m.group(1) else 0
                counts[table] = index + 1 if m.group(1) else 1
                self.at.setdefault((table, index, None), n)
            elif m := self._key.match(raw):
                self.at.setdefault((table, index, m.group(1).strip('"')), n)

    def line(self, table: str, index: int = 0, key: str | None = None) -> int | None:
        return self.at.get((table, index, key)) or self.at.get((table, index, None))


def _where(path: str, line: int | None) -> str:
    return f"{path}:{line}" if line else path


def _check_type(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("number", "rate"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
        return ok and (kind == "number" or value <= 1)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "tables":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    raise AssertionError(kind)


def _check_keys(table: dict[str, Any], allowed: dict[str, str], path: str, lines: _Lines, section: str,
                index: int, label: str) -> None:
    for key, value in table.items():
        line = lines.line(section, index, key) if section else (lines.line("", 0, key) or lines.line(key, 0))
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
            raise UserError(f"{_where(path, line)}: {label}: unknown key {key!r}{hint}")
        if not _check_type(value, allowed[key]):
            raise UserError(f"{_where(path, line)}: {label}: {key} must be {_KIND_WORDS[allowed[key]]}, not {value!r}")


def load_policy(path: str | Path) -> Policy:
    """Parse and check a policy file's structure (names are checked by `check_names`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no policy file at {path}")
    text = read_text(path, "policy", "toml")  # kept: messages point at its line numbers
    data = parse_record(text, f"policy {path}", "toml")
    p = str(path)
    lines = _Lines(text)
    _check_keys(data, _TOP_KEYS, p, lines, "", 0, "policy")
    rules: list[Rule] = []
    for section, allowed, checks in (("rule", _RULE_KEYS, ("must_not_be_significant", "must_not_be_beyond_random",
                                                           "max_abs_slope", "max_flip_rate")),
                                     ("require", _REQUIRE_KEYS, ("must_be_significant", "must_be_beyond_random",
                                                                 "min_abs_slope", "min_flip_rate")),
                                     ("baseline", _BASELINE_KEYS, ("max_abs_slope_increase", "max_flip_rate_increase"))):
        tables = data.get(section, [])
        tables = [tables] if isinstance(tables, dict) else tables
        for i, table in enumerate(tables):
            label = f"[{section}]" if section == "baseline" else f"[[{section}]] #{i + 1}"
            line = lines.line(section, i)
            _check_keys(table, allowed, p, lines, section, i, label)
            if "subspace" in table and "tag" in table:
                raise UserError(f"{_where(p, line)}: {label}: give either subspace or tag, not both")
            if section != "baseline" and "subspace" not in table and "tag" not in table:
                raise UserError(f"{_where(p, line)}: {label}: name what it applies to: subspace = \"id\" or tag = \"protected\"")
            limits = {k: table[k] for k in checks if k in table}
            if section == "require":
                limits.setdefault("must_be_significant", True)
            if not limits:
                raise UserError(f"{_where(p, line)}: {label}: no check given (one of {', '.join(checks)})")
            subject = (f"tag {table['tag']!r}" if "tag" in table else
                       f"subspace {table['subspace']!r}" if "subspace" in table else "every driver")
            default = {"rule": f"limits on {subject}", "require": f"required driver: {subject}",
                       "baseline": f"no regression vs baseline: {subject}"}[section]
            rules.append(Rule(kind=section, name=table.get("name", default), subspace=table.get("subspace"),
                              tag=table.get("tag"), checks=limits, line=line, required=table.get("required", False),
                              allow_incomparable=table.get("allow_incomparable", False)))
    rules.sort(key=lambda r: r.line or 10**9)  # file order
    if not rules:
        raise UserError(f"{path}: the policy has no [[rule]], [[require]] or [baseline] entry")
    return Policy(name=data.get("name", path.stem), description=data.get("description", ""), rules=rules, path=p)


def _known(record: AuditRecord) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Subspace id -> tags, and id -> display name, from the bank and the drivers."""
    tags: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    entries = [(s.id, s.name, s.tags) for s in (record.bank.subspaces if record.bank else [])]
    for sid, name, their_tags in entries + [(d.subspace, d.name, d.tags) for d in record.drivers]:
        tags[sid] = sorted(set(tags.get(sid, [])) | set(their_tags))
        names.setdefault(sid, name or sid)
    return tags, names


def subjects(rule: Rule, record: AuditRecord) -> list[str]:
    """The subspace ids a rule applies to in this audit (bank order)."""
    tags, _ = _known(record)
    if rule.subspace:
        return [rule.subspace]
    if rule.tag:
        return [sid for sid, t in tags.items() if rule.tag in t]
    return [d.subspace for d in record.drivers]


def check_names(policy: Policy, record: AuditRecord) -> None:
    """Refuse rules naming a subspace or tag this audit does not have."""
    tags, _ = _known(record)
    all_tags = sorted({t for ts in tags.values() for t in ts})
    for rule in policy.rules:
        where = _where(policy.path, rule.line)
        if rule.subspace and rule.subspace not in tags:
            close = difflib.get_close_matches(rule.subspace, tags, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(tags)}"
            raise UserError(f"{where}: {rule.name}: unknown subspace {rule.subspace!r} in this audit ({hint})")
        if rule.tag and rule.tag not in all_tags:
            raise UserError(f"{where}: {rule.name}: no subspace in this audit has tag {rule.tag!r} "
                            f"(tags present: {', '.join(all_tags) or 'none'})")


# --- evaluating ------------------------------------------------------------------


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _change(new: Driver, old: Driver):
    """The same driver comparison `iceaudit diff` shows."""
    from iceaudit.compare import DriverChange

    return DriverChange(new.subspace, new.name, False, old, new)


def _check(d: Driver, key: str, limit: Any, old: Driver | None = None) -> CheckResult:
    if key == "must_not_be_significant":
        value, ok = d.significant, not (limit and d.significant)
        msg = "significant driver" if value else "not significant"
    elif key == "must_be_significant":
        value, ok = d.significant, d.significant or not limit
        msg = "significant driver" if value else "not significant"
    elif key in ("must_not_be_beyond_random", "must_be_beyond_random"):
        if d.beyond_random is None:  # a record from before the two claims were told apart
            value, ok, msg = None, False, "the audit did not record whether it exceeds random edits (re-run it)"
        else:
            value = d.beyond_random
            ok = (not (limit and value)) if key == "must_not_be_beyond_random" else (value or not limit)
            msg = "larger than random edits of its size" if value else "no larger than random edits of its size"
    elif key == "max_abs_slope":
        value = abs(d.slope)
        ok, msg = value <= limit, f"|slope| {_fmt(value)} vs max {_fmt(limit)}"
    elif key == "max_flip_rate":
        value = d.flip_rate
        ok, msg = value <= limit, f"flip rate {_fmt(value)} vs max {_fmt(limit)}"
    elif key == "min_abs_slope":
        value = abs(d.slope)
        ok, msg = value >= limit, f"|slope| {_fmt(value)} vs min {_fmt(limit)}"
    elif key == "min_flip_rate":
        value = d.flip_rate
        ok, msg = value >= limit, f"flip rate {_fmt(value)} vs min {_fmt(limit)}"
    elif key == "max_abs_slope_increase":
        assert old is not None
        value = _change(d, old).abs_slope_increase
        ok = value <= limit
        msg = f"|slope| {_fmt(abs(old.slope))} -> {_fmt(abs(d.slope))} (change {value:+.3g}, max +{_fmt(limit)})"
    elif key == "max_flip_rate_increase":
        assert old is not None
        value = _change(d, old).flip_rate_increase
        ok = value <= limit
        msg = f"flip rate {_fmt(old.flip_rate)} -> {_fmt(d.flip_rate)} (change {value:+.3g}, max +{_fmt(limit)})"
    else:  # pragma: no cover - load_policy only admits the keys above
        raise AssertionError(key)
    return CheckResult(check=key, value=value, limit=limit, passed=bool(ok), message=msg)


def evaluate(policy: Policy, record: AuditRecord, baseline: AuditRecord | None = None,
             audit_label: str = "", baseline_label: str | None = None) -> GateResult:
    """Apply every rule of ``policy`` to ``record`` (and ``baseline``).

    Args:
        policy: the loaded policy.
        record: the audit's record.
        baseline: the previous release's record, for [baseline] rules.
        audit_label, baseline_label: how the result names them.
    """
    check_names(policy, record)
    warnings = _comparable(policy, record, baseline, baseline_label)
    drivers = {d.subspace: d for d in record.drivers}
    old = {d.subspace: d for d in baseline.drivers} if baseline is not None else None
    outcomes: list[Outcome] = []
    for rule in policy.rules:
        if rule.kind == "baseline" and old is None:
            if rule.required:
                raise UserError(f"{_where(policy.path, rule.line)}: the policy requires a baseline: "
                                "pass --baseline OLD_AUDIT_DIR/summary.json")
            outcomes.append(Outcome(rule.name, rule.kind, "(no baseline)", passed=False, skipped=True,
                                    message="no --baseline given; regression limits not checked"))
            continue
        for sid in subjects(rule, record):
            d = drivers.get(sid)
            if d is None:  # in the bank but not measured: missing evidence fails
                outcomes.append(Outcome(rule.name, rule.kind, sid, passed=False, message="not measured by this audit"))
                continue
            if rule.kind == "baseline" and sid not in old:
                outcomes.append(Outcome(rule.name, rule.kind, sid, passed=False, skipped=True,
                                        message="not in the baseline audit"))
                continue
            checks = [_check(d, k, v, old.get(sid) if old else None) for k, v in rule.checks.items()]
            ok = all(c.passed for c in checks)
            msg = "; ".join(c.message for c in checks if not c.passed) if not ok else "; ".join(c.message for c in checks)
            outcomes.append(Outcome(rule.name, rule.kind, sid, passed=ok, message=msg, checks=checks))
    return GateResult(policy=policy.name, audit=audit_label, baseline=baseline_label, outcomes=outcomes,
                      warnings=warnings)


def _comparable(policy: Policy, record: AuditRecord, baseline: AuditRecord | None,
                baseline_label: str | None) -> list[str]:
    """Refuse (UserError) a baseline that measured something else; return the warnings."""
    from iceaudit.compare import differences

    rules = [r for r in policy.rules if r.kind == "baseline"]
    if baseline is None or not rules:
        return []
    found = differences(record, baseline)
    allowed = all(r.allow_incomparable for r in rules)
    blocking = [d for d in found if d.blocking and not allowed]
    if blocking:
        raise UserError(f"baseline {baseline_label or ''} is not comparable with this audit: "
                        + "; ".join(d.describe() for d in found),
                        hint="Audit both releases with the same generator, bank and step grid, or set "
                             "allow_incomparable = true in the policy's [baseline] table to compare anyway.")
    return [d.describe() for d in found]


def run_gate(audit: str | Path, policy_path: str | Path, baseline: str | Path | None = None) -> GateResult:
    """Load the audit summary, the policy and the optional baseline; evaluate."""
    record = load_record(audit)
    policy = load_policy(policy_path)
    old = load_record(baseline) if baseline is not None else None
    return evaluate(policy, record, old, audit_label=str(audit), baseline_label=str(baseline) if baseline else None)


# --- writing results -------------------------------------------------------------


def junit_xml(result: GateResult) -> str:
    """JUnit XML: one testsuite (the policy), one testcase per rule x subject."""
    c = result.counts
    suite = ET.Element("testsuite", name=f"iceaudit gate: {result.policy}", tests=str(c["total"]),
                       failures=str(c["failed"]), skipped=str(c["skipped"]), errors="0")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="audit", value=result.audit)
    if result.baseline:
        ET.SubElement(props, "property", name="baseline", value=result.baseline)
    for o in result.outcomes:
        case = ET.SubElement(suite, "testcase", classname=f"iceaudit.gate.{result.policy}", name=f"{o.rule} [{o.subject}]")
        if o.skipped:
            ET.SubElement(case, "skipped", message=o.message)
        elif not o.passed:
            fail = ET.SubElement(case, "failure", message=o.message, type="PolicyViolation")
            fail.text = "\n".join(f"{ch.check}: {ch.message} -> {'ok' if ch.passed else 'FAIL'}" for ch in o.checks) or o.message
        else:
            ET.SubElement(case, "system-out").text = o.message
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_text(path: str | Path, text: str) -> Path:
    from iceaudit.atomic import write_text as write_atomic

    return write_atomic(path, text, make_parents=True)


def write_json(result: GateResult, path: str | Path) -> Path:
    return write_text(path, json.dumps(result.to_dict(), indent=2) + "\n")


def write_junit(result: GateResult, path: str | Path) -> Path:
    return write_text(path, junit_xml(result))


def render_table(result: GateResult, console: Any) -> None:
    """The human summary: a rich table, then one line saying pass or fail."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"iceaudit gate — policy {result.policy!r}"), title_justify="left")
    table.add_column("rule")
    table.add_column("subspace")
    table.add_column("measured vs limit")
    table.add_column("result")
    for o in result.outcomes:
        status = "[yellow]skipped[/]" if o.skipped else "[green]pass[/]" if o.passed else "[bold red]FAIL[/]"
        table.add_row(escape(o.rule), escape(o.subject), escape(o.message), status)
    console.print(table)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    c = result.counts
    if result.passed:
        console.print(f"[bold green]PASSED[/] {c['passed']} of {c['total']} checks passed" +
                      (f", {c['skipped']} skipped" if c["skipped"] else ""))
    else:
        console.print(f"[bold red]FAILED[/] {c['failed']} of {c['total']} checks failed")
