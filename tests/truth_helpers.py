"""Audits of the shipped FaceLab world that the truth tests grade: one per classifier and module."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from iceaudit.audit.classifier import Classifier
from iceaudit.audit.runner import AuditResult, AuditSettings, run_audit
from iceaudit.bank.format import load_bank
from iceaudit.stylegan2.loaders import load_generator

ROOT = Path(__file__).resolve().parent.parent
N_FACES = 16


def demo_world(root: Path) -> tuple:
    """The shipped demo generator and bank, and a folder for the audits."""
    return load_generator("demo"), load_bank(ROOT / "subspace_bank" / "demo"), root


def audit_once(cache: dict, name: str, classifier: Callable[[], Classifier], world: tuple, **options) -> AuditResult:
    """``name``'s audit on the demo world (N = 16, seed 0, 6 nulls), run on first use and kept in ``cache``."""
    if name not in cache:
        G, bank, root = world
        threads = torch.get_num_threads()
        torch.set_num_threads(2)  # conftest pins 1; these audits are the slow part of the suite
        try:
            cache[name] = run_audit(classifier(), G, bank, AuditSettings.of(
                n=N_FACES, seed=0, n_null=6, device="cpu", progress=False, out=root / name, **options))
        finally:
            torch.set_num_threads(threads)
    return cache[name]
