"""Audit many classifiers in one job, gate each, and write one index.

Every model is audited on the same faces (same generator, bank, seeds and settings),
so differences between models are paired: the same face walked along the same
subspace, scored by two models. The sweep directory::

    index.html, index.json, junit.xml    one row / one testsuite per model
    <model>/                             its audit directory, gate.json and report.html

A model whose card or file is bad is reported (an error row and a JUnit error) and the
others still run; `run_sweep` raises nothing for it.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from iceaudit import dirlock
from iceaudit.errors import UserError
from iceaudit.validation import parse_record

CLASSIFIER_SUFFIXES = (".pt", ".pth", ".ts", ".onnx", ".safetensors")
CARD_SUFFIXES = (".toml", ".yaml", ".yml")
INDEX_VERSION = 1


@dataclass(frozen=True)
class SweepModel:
    """One classifier of a sweep and its model card."""

    name: str  # unique in the sweep; its audit directory's name
    classifier: Path
    card: Path | None


@dataclass
class RuleOutcome:
    """One gate outcome of one model (a JUnit testcase)."""

    rule: str
    subject: str
    passed: bool
    skipped: bool
    message: str


@dataclass
class SweepEntry:
    """What the sweep found for one model (a row of the index)."""

    name: str
    classifier: str
    card: str | None
    audit_dir: str  # relative to the sweep directory
    report: str | None = None  # relative path of report.html
    passed: bool | None = None  # the gate (None: not gated, the audit failed)
    failed_rules: list[str] = field(default_factory=list)
    gate_warnings: list[str] = field(default_factory=list)
    baseline: str | None = None  # the baseline summary it was gated against
    verdict: str = ""
    top_driver: str | None = None
    significant: list[str] = field(default_factory=list)  # significant subspace ids
    slopes: dict[str, float] = field(default_factory=dict)  # subspace id -> slope per unit
    outcomes: list[RuleOutcome] = field(default_factory=list)  # the gate's, as in <model>/gate.json
    error: str | None = None  # the audit could not run: the message


@dataclass
class SweepIndex:
    """The sweep's record: settings every model shared, and one entry per model."""

    policy: str
    generator: str
    bank: str
    n: int | None
    seed: int
    backend: str
    models: list[SweepEntry]
    subspaces: list[dict[str, str]] = field(default_factory=list)  # id, name of each audited subspace
    version: int = INDEX_VERSION

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.models)

    @property
    def errors(self) -> list[SweepEntry]:
        return [m for m in self.models if m.error]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "passed": self.passed}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "SweepIndex":
        data = parse_record(text, "sweep index", "json")
        if not isinstance(data, dict):
            raise UserError("sweep index: not a JSON object")
        if data.get("version") != INDEX_VERSION:
            raise UserError(f"sweep index version {data.get('version')!r} is not {INDEX_VERSION}")
        data.pop("passed", None)
        data["models"] = [SweepEntry(**{**m, "outcomes": [RuleOutcome(**o) for o in m["outcomes"]]})
                          for m in data["models"]]
        return cls(**data)


def find_classifiers(spec: str | Path | Sequence[str | Path]) -> list[SweepModel]:
    """The models of a sweep: a directory (every classifier file in it), a comma-separated
    list of files, or a sequence of files. A model's card is the file beside it with the
    same stem and a .toml/.yaml/.yml suffix (none: the card's defaults).

    Args:
        spec: directory, ``"a.pt,b.onnx"``, or a list of paths.
    """
    if isinstance(spec, (str, Path)) and Path(spec).is_dir():
        files = sorted(p for p in Path(spec).iterdir() if p.is_file() and p.suffix.lower() in CLASSIFIER_SUFFIXES)
        if not files:
            raise UserError(f"--classifiers {spec}: no classifier files ({', '.join(CLASSIFIER_SUFFIXES)}) in it")
    else:
        items = [s.strip() for s in str(spec).split(",")] if isinstance(spec, (str, Path)) else [str(s) for s in spec]
        files = [Path(s) for s in items if s]
        if not files:
            raise UserError("--classifiers: give a directory or a comma-separated list of classifier files")
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise UserError(f"--classifiers: no such file(s): {', '.join(missing)}")
    models, seen = [], set()
    for path in files:
        card = next((c for c in (path.with_suffix(s) for s in CARD_SUFFIXES) if c.is_file()), None)
        name = _unique(re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem), seen)
        models.append(SweepModel(name=name, classifier=path, card=card))
    return models


def _unique(name: str, seen: set[str]) -> str:
    candidate, k = name, 2
    while candidate in seen:
        candidate, k = f"{name}-{k}", k + 1
    seen.add(candidate)
    return candidate


def run_sweep(models: list[SweepModel], policy: str | Path, out: str | Path, *, generator: str = "demo",
              bank: str | Path | None = None, baseline_dir: str | Path | None = None,
              formats: Sequence[str] = ("html",), resume: bool = False, backend: str = "local",
              ray_address: str | None = None, workers: int | None = None, device: str = "auto",
              trust_classifier: bool = False, **audit_options: Any) -> SweepIndex:
    """Audit, gate and report every model; write index.json, index.html and junit.xml.

    Args:
        models: from `find_classifiers`.
        policy: policy file or shipped policy name; every model is gated against it.
        out: the sweep directory (new or empty; with ``resume``, a sweep to finish).
        generator: generator file or ``"demo"``; loaded once for all models.
        bank: bank directory or shipped name (default ``demo`` with the demo generator).
        baseline_dir: an earlier sweep's directory: each model is also gated against
            ``baseline_dir/<name>/summary.json`` when it is there.
        formats: report formats per model (``html``, ``pdf``; empty: none).
        resume: reuse finished audits in ``out`` and resume interrupted ones.
        backend, ray_address, workers: where the walks run (one Ray connection for the sweep).
        device: ``auto``, ``cpu``, ``cuda``…
        trust_classifier: run TorchScript classifier files (they carry code); docs/security.md.
        **audit_options: `iceaudit.audit` options shared by all models (n, seed, baselines,
            n_steps, n_null, shard_faces, progress, …).
    """

    from iceaudit.api import load_bank
    from iceaudit.audit.classifier import load_card
    from iceaudit.audit.runner import AuditSettings
    from iceaudit.audit.sample import resolve_device
    from iceaudit.audit.trust import check_runnable
    from iceaudit.gate import load_policy
    from iceaudit.resources import bank_dir, shipped_policy
    from iceaudit.stylegan2.loaders import load_generator

    out = Path(out)
    if out.exists() and (not out.is_dir() or (not dirlock.is_empty(out) and not resume)):
        raise UserError(f"--out {out} exists and is not an empty directory; nothing was written",
                        hint="Pass --resume to finish an interrupted sweep there, or choose a new directory.")
    if bank is None and generator != "demo":
        raise UserError("a bank is required with a generator other than `demo`", hint="Pass --bank DIR.")
    unknown = sorted(set(audit_options) - set(AuditSettings.option_names()))
    if unknown:
        raise UserError(f"run_sweep(): unknown option(s) {', '.join(unknown)}")
    # options every model shares are refused once, here, not as one error row per model
    AuditSettings.of(backend=backend, workers=workers, ray_address=ray_address, **audit_options).check()
    policy_path = shipped_policy(policy)
    load_policy(policy_path)
    cards = {m.name: load_card(m.card) for m in models}  # every card checked before any audit
    for m in models:  # and every TorchScript file refused at once unless trusted
        if m.classifier.suffix.lower() != ".onnx" and not cards[m.name].factory:
            check_runnable(m.classifier, trust_classifier)
    dev = resolve_device(device)
    bank_path = bank_dir(bank if bank is not None else "demo")
    shared = _Shared(G=load_generator(generator, device=dev), bank=load_bank(bank_path), bank_path=str(bank_path),
                     generator=str(generator), policy=policy_path, baseline_dir=baseline_dir, formats=tuple(formats),
                     resume=resume, options=dict(audit_options, device=str(dev), backend=backend,
                                                  ray_address=ray_address, workers=workers,
                                                  trust_classifier=trust_classifier))
    with dirlock.hold(out, "sweep"):  # one sweep per directory
        return _sweep_all(models, cards, out, shared, backend, ray_address, workers)


def _sweep_all(models: list[SweepModel], cards: dict, out: Path, shared: "_Shared", backend: str,
               ray_address: str | None, workers: int | None) -> SweepIndex:
    import torch

    started_ray = False
    if backend == "ray":
        from iceaudit.audit.ray_backend import connect

        started_ray = connect(ray_address, workers * torch.get_num_threads() if workers else None)
    index = _index([], shared, backend)
    try:
        for k, m in enumerate(models, 1):
            if shared.options.get("progress", True):
                _console().print(f"[bold]model {k}/{len(models)}[/]: {m.name}", highlight=False)
            index.models.append(_sweep_one(m, cards[m.name], out, shared))
            write_index(index, out)  # after every model: an interrupted sweep keeps what it did
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return index


def _console():
    from rich.console import Console

    return Console(stderr=True)


@dataclass
class _Shared:
    """What every model of one sweep is audited and gated with."""

    G: Any
    bank: Any
    bank_path: str
    generator: str
    policy: Path
    baseline_dir: str | Path | None
    formats: tuple[str, ...]
    resume: bool
    options: dict[str, Any]


def _sweep_one(m: SweepModel, card, out: Path, shared: _Shared) -> SweepEntry:
    from iceaudit.api import Audit, audit
    from iceaudit.gate import run_gate, write_json
    from iceaudit.report import build_report

    audit_dir = out / m.name
    entry = SweepEntry(name=m.name, classifier=str(m.classifier), card=str(m.card) if m.card else None,
                       audit_dir=m.name)
    try:
        if shared.resume and (audit_dir / "summary.json").is_file():
            result = Audit.load(audit_dir)  # finished before the interruption
        else:
            result = audit(m.classifier, card, generator=shared.G, bank=shared.bank, out=audit_dir,
                           resume=shared.resume and audit_dir.is_dir() and not dirlock.is_empty(audit_dir),
                           card_path=entry.card, generator_name=shared.generator, bank_path=shared.bank_path,
                           **shared.options)
    except UserError as err:
        entry.error = err.message
        return entry
    base = Path(shared.baseline_dir) / m.name / "summary.json" if shared.baseline_dir is not None else None
    entry.baseline = str(base) if base is not None and base.is_file() else None
    gate = run_gate(audit_dir, shared.policy, entry.baseline)
    write_json(gate, audit_dir / "gate.json")
    entry.passed = gate.passed
    entry.failed_rules = sorted({f"{o.rule} [{o.subject}]" for o in gate.outcomes if not o.passed and not o.skipped})
    entry.gate_warnings = list(gate.warnings)
    entry.outcomes = [RuleOutcome(o.rule, o.subject, o.passed, o.skipped, o.message) for o in gate.outcomes]
    drivers = result.record.drivers
    entry.verdict = result.record.verdict
    entry.top_driver = drivers[0].subspace if drivers else None
    entry.significant = [d.subspace for d in drivers if d.significant]
    entry.slopes = {d.subspace: d.slope for d in drivers}
    if shared.formats:
        written = build_report(audit_dir, formats=shared.formats, policy=shared.policy)
        entry.report = str(Path(m.name) / written[0].name)
    return entry


def _index(entries: list[SweepEntry], shared: _Shared, backend: str) -> SweepIndex:
    chosen = shared.options.get("subspaces")
    return SweepIndex(policy=str(shared.policy), generator=shared.generator, bank=shared.bank_path,
                      n=shared.options.get("n"), seed=int(shared.options.get("seed", 0)), backend=backend,
                      models=list(entries),
                      subspaces=[{"id": s.id, "name": s.name} for s in shared.bank.subspaces
                                 if not chosen or s.id in chosen])


def write_index(index: SweepIndex, out: str | Path) -> list[Path]:
    """index.json, index.html and junit.xml in ``out`` (each written atomically)."""
    from iceaudit.atomic import write_text

    out = Path(out)
    return [write_text(out / "index.json", index.to_json()), write_text(out / "index.html", index_html(index)),
            write_text(out / "junit.xml", index_junit(index))]


def index_html(index: SweepIndex) -> str:
    import jinja2

    from iceaudit.report.render import templates_dir

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir()), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("sweep.html.j2").render(index=index)


def index_junit(index: SweepIndex) -> str:
    """One testsuite per model; its testcases are the gate's outcomes (an audit that could
    not run is one testcase with an error)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="iceaudit sweep")
    for m in index.models:
        suite = ET.SubElement(root, "testsuite", name=f"iceaudit sweep: {m.name}")
        if m.error:
            suite.set("tests", "1"), suite.set("failures", "0"), suite.set("errors", "1")
            case = ET.SubElement(suite, "testcase", classname=f"iceaudit.sweep.{m.name}", name="audit")
            ET.SubElement(case, "error", message=m.error, type="UserError")
            continue
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="gate", value=f"{m.audit_dir}/gate.json")
        failures = 0
        for o in m.outcomes:
            case = ET.SubElement(suite, "testcase", classname=f"iceaudit.sweep.{m.name}", name=f"{o.rule} [{o.subject}]")
            if o.skipped:
                ET.SubElement(case, "skipped", message=o.message)
            elif not o.passed:
                failures += 1
                ET.SubElement(case, "failure", message=o.message, type="PolicyViolation")
        suite.set("tests", str(len(m.outcomes))), suite.set("failures", str(failures)), suite.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

