"""The audit: classifier adapter, sampling, subspace walks, statistics, counterfactuals.

    from iceaudit.audit import AuditSettings, load_card, load_classifier, run_audit
    clf = load_classifier("model.pt", load_card("card.toml"))
    result = run_audit(clf, G, "subspace_bank/demo", AuditSettings.of(n=64, out="audit-out"))

Most callers want the API instead: ``iceaudit.audit(model, card)`` (this package is
callable, see `_AuditPackage`) returns an `iceaudit.api.Audit`.
"""
from __future__ import annotations

import sys
import types
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


class _AuditPackage(types.ModuleType):
    """`iceaudit.audit` is this package and the API's verb at once: calling the package
    runs `iceaudit.api.audit`, so ``iceaudit.audit(model, card)`` works whether or not a
    submodule such as ``iceaudit.audit.runner`` was imported first (which binds the
    package, not the function, to the name ``iceaudit.audit``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from iceaudit.api import audit

        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _AuditPackage
