"""The audit: classifier adapter, sampling, subspace walks, statistics, counterfactuals.

    from iceaudit.audit import AuditSettings, load_card, load_classifier, run_audit
    clf = load_classifier("model.pt", load_card("card.toml"))
    result = run_audit(clf, G, "subspace_bank/demo", AuditSettings(n=64, out="audit-out"))
"""
from __future__ import annotations

from typing import Any

__all__ = ["AuditResult", "AuditSettings", "Classifier", "ModelCard", "load_card", "load_classifier", "run_audit"]


def __getattr__(name: str) -> Any:  # lazy: keep `import iceaudit.audit` cheap
    if name in ("AuditResult", "AuditSettings", "run_audit"):
        from iceaudit.audit import runner

        return getattr(runner, name)
    if name in ("Classifier", "ModelCard", "load_card", "load_classifier"):
        from iceaudit.audit import classifier

        return getattr(classifier, name)
    raise AttributeError(name)
