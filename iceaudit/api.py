"""The Python API: one call audits a classifier; `Audit` holds what the audit wrote.

    import iceaudit
    a = iceaudit.audit(my_module, {"input_size": 64, "head": "logit"}, n=32)
    a.drivers            # pandas DataFrame, strongest driver first
    a.report("report")   # HTML + PDF
    a.gate("fairness")   # GateResult: .passed, .outcomes

The CLI's `iceaudit audit` and `iceaudit demo` call `audit` too, so a notebook and a
shell run give the same summary for the same inputs.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch

    from iceaudit.audit.classifier import Classifier, ModelCard
    from iceaudit.bank.format import Bank
    from iceaudit.gate import GateResult
    from iceaudit.record import AuditRecord
    from iceaudit.stylegan2.networks import Generator


def load_classifier(classifier: "str | Path | torch.nn.Module | Callable | Classifier",
                    card: "str | Path | Mapping[str, Any] | ModelCard | None" = None,
                    device: "str | torch.device" = "cpu", trust: bool = False) -> "Classifier":
    """A classifier with its model card, from a file or from memory.

    Args:
        classifier: a TorchScript file, a state dict (with ``factory`` in the card), an
            ``.onnx`` file, an in-memory ``torch.nn.Module`` or a tensor → tensor callable.
        card: the model card: a TOML/YAML path, a dict of card keys, or a ModelCard;
            None takes the card's defaults (input at generator size, logit 0, threshold 0).
        device: where the model runs.
        trust: you trust the file's source: TorchScript (which runs its own code) is
            loaded and a card's factory may be any callable. ONNX and state dict +
            ``nn.Module`` factory need no trust (docs/security.md).

    Example:
        >>> clf = iceaudit.load_classifier("smile.pt", "smile.toml", trust=True)
    """
    from iceaudit.audit.classifier import Classifier, ModelCard, load_card, wrap_classifier
    from iceaudit.audit.classifier import load_classifier as load_file

    if isinstance(classifier, Classifier):
        return classifier
    if isinstance(card, ModelCard):
        model_card = card
    elif isinstance(card, Mapping):
        model_card = load_card(None, **dict(card))
    else:
        model_card = load_card(card)
    if isinstance(classifier, (str, Path)):
        return load_file(classifier, model_card, device=device, trust=trust)
    return wrap_classifier(classifier, model_card, device=device)


def load_bank(bank: "str | Path | Bank" = "demo") -> "Bank":
    """A subspace bank: a directory, or the name of a shipped bank (``"demo"``).

    Example:
        >>> bank = iceaudit.load_bank("demo"); [s.id for s in bank.subspaces][:3]
    """
    from iceaudit.bank.format import Bank
    from iceaudit.bank.format import load_bank as load_dir
    from iceaudit.resources import bank_dir

    return bank if isinstance(bank, Bank) else load_dir(bank_dir(bank))


def audit(classifier: "str | Path | torch.nn.Module | Callable | Classifier",
          card: "str | Path | Mapping[str, Any] | ModelCard | None" = None, *,
          generator: "str | Path | Generator" = "demo", bank: "str | Path | Bank | None" = None,
          n: int | None = None, seed: int = 0, device: str = "auto",
          baselines: str | Sequence[str] = "default", out: str | Path | None = None,
          parser: str | None = None, parser_labels: str = "bisenet", trust_classifier: bool = False,
          **settings: Any) -> "Audit":
    """Audit a classifier: which interpretable subspaces move its decision, with evidence.

    Args:
        classifier: file path (TorchScript, state dict + card ``factory``, ONNX), or an
            in-memory ``nn.Module`` / callable taking the card's preprocessed input.
        card: model card (path, dict of card keys, or ModelCard); see docs/audit.md.
        generator: a generator file, a loaded Generator, or ``"demo"`` (shipped FaceLab).
        bank: a bank directory, a Bank, or a shipped bank's name; default: ``"demo"``
            for the demo generator (required for any other generator).
        n: number of faces (default: 256 on CUDA, 64 on CPU).
        seed: first face seed; faces use seeds seed..seed+n-1.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N``.
        baselines: ``none``, ``default``, ``all`` or method names (docs/baselines.md).
        out: audit directory to write (new or empty); None: a fresh temporary directory.
        parser: face parser for region baselines (a BiSeNet checkpoint or ``facelab``;
            default ``facelab`` with the demo generator).
        parser_labels: label order of a BiSeNet checkpoint (bisenet, parsenet, facer).
        trust_classifier: run a TorchScript classifier file (it carries code) or any
            factory callable; see `load_classifier` and docs/security.md.
        **settings: further `AuditSettings` fields: ``psi``, ``n_steps``, ``n_null``,
            ``batch_images``, ``subspaces``, ``sanity``, ``resume``, ``command``, ``progress``,
            ``own_units`` (False: keep the bank's own-criterion figures instead of measuring
            them at the audited faces);
            speed: ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``), ``compile`` (True:
            torch.compile the synthesis and the classifier, eager if that fails),
            ``memory_format`` (``"auto"``, ``"channels_last"``, ``"contiguous"``);
            where the walks run: ``backend`` (``"local"`` or ``"ray"``), ``workers``,
            ``ray_address``, ``shard_faces`` (docs/scale-out.md).

    Returns:
        The Audit, read back from the directory it wrote.
    """
    from iceaudit.audit.baselines import parse_methods
    from iceaudit.audit.runner import AuditSettings, check_out, run_audit
    from iceaudit.audit.sample import resolve_device
    from iceaudit.bank.format import Bank
    from iceaudit.criteria.eyes import load_parser
    from iceaudit.errors import UserError
    from iceaudit.resources import bank_dir
    from iceaudit.stylegan2.loaders import load_generator

    unknown = sorted(set(settings) - set(AuditSettings.option_names()))
    if unknown:
        raise UserError(f"audit(): unknown option(s) {', '.join(unknown)}")
    AuditSettings.of(n=n, seed=seed, **settings).check()  # bad numbers are refused before any loading
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="iceaudit-audit-"))
    check_out(out_dir, bool(settings.get("resume", False)))
    methods = parse_methods(baselines)
    dev = resolve_device(device)
    generator_name = settings.pop("generator_name", str(generator) if isinstance(generator, (str, Path)) else None)
    is_demo = generator_name == "demo"
    if bank is None and not is_demo:
        raise UserError("a bank is required with a generator other than `demo`",
                        hint="Pass the bank built for this generator: bank=DIR (CLI: --bank DIR).")
    card_path = settings.pop("card_path", str(card) if isinstance(card, (str, Path)) else None)
    given_bank_path = settings.pop("bank_path", None)
    clf = load_classifier(classifier, card, device=dev, trust=trust_classifier)
    G = load_generator(str(generator), device=dev) if isinstance(generator, (str, Path)) else generator
    bank_path = None if isinstance(bank, Bank) else bank_dir(bank if bank is not None else "demo")
    bank_obj = bank if isinstance(bank, Bank) else load_bank(bank_path)
    run_settings = AuditSettings.of(
        n=n, seed=seed, device=str(dev), out=str(out_dir), baselines=methods,
        generator_name=generator_name,
        bank_path=given_bank_path or (str(bank_path) if bank_path else None),
        card_path=card_path,
        parser=load_parser(parser or ("facelab" if is_demo else None), label_order=parser_labels) if methods else None,
        **settings,
    )
    run_audit(clf, G, bank_obj, run_settings)
    return Audit.load(out_dir)


@dataclass
class Audit:
    """An audit directory, read back: the summary, the long tables, and verbs on them."""

    dir: Path
    record: "AuditRecord"  # summary.json, typed
    results: "pd.DataFrame"  # long table: sample, seed, subspace, alpha, score, image_change
    counterfactuals: "pd.DataFrame"  # sample, seed, subspace, step, score_before, score_after

    @classmethod
    def load(cls, audit_dir: str | Path) -> "Audit":
        """Read an audit directory written by `audit` or `iceaudit audit`.

        Args:
            audit_dir: the directory holding summary.json and results.parquet.
        """
        import pandas as pd

        from iceaudit.errors import UserError
        from iceaudit.record import load_record

        folder = Path(audit_dir)
        record = load_record(folder)
        tables = {}
        for name in ("results", "counterfactuals"):
            path = folder / f"{name}.parquet"
            if not path.is_file():
                raise UserError(f"{folder} has no {name}.parquet: not a finished audit directory")
            tables[name] = pd.read_parquet(path)
        return cls(dir=folder, record=record, **tables)

    @property
    def drivers(self) -> "pd.DataFrame":
        """One row per subspace, ranked (significant drivers first, then by |slope|)."""
        import pandas as pd

        from dataclasses import asdict

        rows = [{k: v for k, v in asdict(d).items() if k != "extra"} for d in self.record.drivers]
        return pd.DataFrame(rows).set_index("rank") if rows else pd.DataFrame()

    @property
    def verdict(self) -> str:
        return self.record.verdict

    def report(self, out: str | Path | None = None, formats: Iterable[str] = ("html", "pdf"),
               policy: str | Path | None = None) -> list[Path]:
        """Write report.html / report.pdf (default: into the audit directory).

        Args:
            out: folder for the reports (default: the audit directory).
            formats: any of ``html``, ``pdf``.
            policy: a policy file or a shipped policy's name, shown in the fairness section.
        """
        from iceaudit.report import build_report
        from iceaudit.resources import shipped_policy

        return build_report(self.dir, formats=formats, policy=policy and shipped_policy(policy), out_dir=out)

    def gate(self, policy: str | Path, baseline: "str | Path | Audit | None" = None) -> "GateResult":
        """Hold the audit to a policy (a file or a shipped policy's name) -> GateResult.

        Args:
            policy: policy TOML path, or ``fairness`` / ``fairness-strict`` / ``smile-release``.
            baseline: the previous release's audit (directory, summary.json or Audit).
        """
        from iceaudit.gate import run_gate
        from iceaudit.resources import shipped_policy

        base = baseline.dir if isinstance(baseline, Audit) else baseline
        return run_gate(self.dir, shipped_policy(policy), base)

    def _repr_html_(self) -> str:
        """Jupyter: the verdict, the ranking chart and the top drivers' walk strips."""
        from iceaudit.report.notebook import audit_html

        return audit_html(self)

    def __repr__(self) -> str:
        top = ", ".join(f"{d.name} {d.slope:+.3g}" for d in self.record.drivers[:3])
        return f"Audit({str(self.dir)!r}: {len(self.record.drivers)} subspaces; top: {top})"
