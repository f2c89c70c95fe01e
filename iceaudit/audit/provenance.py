"""The summary record of an audit: what was audited, with what, and how to reproduce it."""
from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from iceaudit import __version__
from iceaudit.audit.classifier import Classifier
from iceaudit.audit.images import AuditImages
from iceaudit.audit.stages import AuditInputs, Measured
from iceaudit.bank.format import Bank
from iceaudit.record import (AuditRecord, BankRecord, BaseRate, ClassifierRecord, Counterfactuals, FaceOutcome,
                             Fairness, FairnessFinding, FlipStats, GeneratorRecord, OwnCriterion, Provenance,
                             SettingsRecord, SubspaceRecord, Validity, compose_verdict)


def compose_summary(inputs: AuditInputs, measured: Measured, images: AuditImages) -> AuditRecord:
    """The audit record of one run (provenance.execution, sanity and baselines are added by the runner).

    Args:
        inputs: the audit's checked inputs.
        measured: its walks and statistics.
        images: the strips and counterfactual images written (none when nothing is written).
    """
    classifier, G, fingerprint, bank = inputs.classifier, inputs.G, inputs.fingerprint, inputs.bank
    subspaces, settings, n, device, batch = inputs.subspaces, inputs.settings, inputs.n, inputs.device, inputs.batch
    drivers, counterfactuals, per_face = measured.drivers, measured.counterfactuals, measured.per_face
    grids = inputs.grids
    grid_lists = {sid: [float(a) for a in g] for sid, g in grids.items()}
    same_grid = len({tuple(v) for v in grid_lists.values()}) == 1
    per_subspace = {}
    for sub in subspaces:
        c = counterfactuals[counterfactuals["subspace"] == sub.id]
        per_subspace[sub.id] = FlipStats(success_rate=len(c) / n,
                                         median_step=float(c["step"].abs().median()) if len(c) else None,
                                         n_flipped=int(len(c)))
    protected = [s.id for s in subspaces if "protected" in s.tags]
    dmap = {d.subspace: d for d in drivers}
    findings = []
    for sid in protected:
        d = dmap[sid]
        statement = (f"{d.name}: one unit moves the score by {d.slope:+.3g} (95% CI {d.ci_low:+.3g} to {d.ci_high:+.3g}) "
                     f"and flips {100 * d.flip_rate:.0f}% of decisions within the tested range; "
                     + ("it moves the decision" + (" (one way for some faces, the other way for others)"
                                                   if d.mixed_sign else "")
                        + ("; more than random edits of the same visual size do." if d.beyond_random else
                           ", though no more than random edits of the same visual size do.")
                        if d.significant else "no significant effect on the decision."))
        findings.append(FairnessFinding(subspace=sid, name=d.name, slope=d.slope, ci_low=d.ci_low, ci_high=d.ci_high,
                                        flip_rate=d.flip_rate, significant=d.significant, p_adjusted=d.p_adjusted,
                                        statement=statement))
    n_pos = int(per_face["positive"].sum())
    command = settings.run.command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    return AuditRecord(
        classifier=ClassifierRecord(
            name=classifier.name, path=classifier.path, sha256=classifier.sha256, kind=classifier.kind,
            differentiable=classifier.differentiable, positive_class=classifier.card.positive_class,
            threshold=classifier.threshold, head=classifier.card.head, card=classifier.card.to_dict()),
        generator=GeneratorRecord(name=settings.run.generator_name or type(G).__name__, fingerprint=fingerprint,
                                  resolution=int(G.img_resolution)),
        bank=BankRecord(name=bank.name, path=settings.run.bank_path, hash=bank_hash(bank), subspaces=[
            SubspaceRecord(id=s.id, name=s.name, tags=list(s.tags), unit=s.unit, step_range=list(s.step_range),
                           description=s.description, space=s.space, layers=list(s.layers), method=s.method,
                           alphas=grid_lists[s.id],
                           bank_step_range=(list(bank[s.id].step_range) if bank[s.id].step_range != s.step_range
                                            else None))
            for s in subspaces]),
        settings=SettingsRecord(
            n_samples=n, seed=settings.science.seed, psi=settings.science.psi,
            alphas=next(iter(grid_lists.values())) if same_grid else grid_lists,
            n_steps=settings.science.n_steps, n_null=settings.science.n_null, device=str(device), batch_images=batch,
            precision=settings.science.precision, partial_synthesis=settings.run.partial, bisect_steps=settings.science.bisect_steps,
            n_bootstrap=settings.science.n_bootstrap, level=settings.science.level),
        verdict=compose_verdict(drivers),
        drivers=drivers,
        walk_strips=images.walk_strips,
        counterfactuals=Counterfactuals(
            method=f"grid + {settings.science.bisect_steps} bisection renders through the generator per crossing; "
                   "step = smallest |alpha| (semantic units) whose decision differs from alpha = 0",
            per_subspace=per_subspace,
            best=images.best,
            per_face=[FaceOutcome(sample=int(r.sample), seed=int(r.seed), score=float(r.score), positive=bool(r.positive),
                                  flipped_by=list(r.flipped_by),
                                  best_subspace=r.best_subspace if isinstance(r.best_subspace, str) else None,
                                  best_step=None if r.best_step is None or pd.isna(r.best_step) else float(r.best_step))
                      for r in per_face.itertuples()]),
        fairness=Fairness(protected=protected, findings=findings),
        validity=Validity(**{**bank_validity(bank), **({"own_criterion": measured.own} if measured.own else {})},
                          null_floor=measured.null_floor,
                          base_rate=BaseRate(positive=n_pos / n, n_positive=n_pos, n=n,
                                             note="share of sampled faces the classifier calls positive at alpha = 0")),
        provenance=Provenance(
            iceaudit_version=__version__, torch=torch.__version__, numpy=np.__version__,
            python=platform.python_version(), platform=platform.platform(), command=command,
            seeds={"faces": [settings.science.seed, settings.science.seed + n - 1], "null_directions": settings.science.seed,
                   "bootstrap": settings.science.seed, "z_convention": "np.random.RandomState(seed).randn(z_dim)"},
            hashes={"classifier": classifier.sha256, "card": card_hash(classifier), "generator": fingerprint,
                    "bank": bank_hash(bank), "bank_manifest": _manifest_sha(settings.run.bank_path)},
            card_path=settings.run.card_path,
            created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")),
    )


def bank_validity(bank: Bank) -> dict[str, dict]:
    """The bank's own validation figures (measured when it was built or `bank validate`d), as
    `Validity` fields: each walk's effect on its own criterion and its leakage (none if unvalidated)."""
    own: dict[str, OwnCriterion] = {}
    leak: dict[str, dict[str, float]] = {}
    for sub in bank.subspaces:
        v = sub.validation or {}
        if "own_effect" not in v:
            continue
        own[sub.id] = OwnCriterion(criterion=sub.unit or sub.criterion, effect_per_unit=float(v["own_effect"]),
                                   expected=1.0, ok=bool(v.get("passed", True)))
        leak[sub.id] = {k: float(x) for k, x in {**v.get("leakage", {}), **v.get("leakage_unchecked", {})}.items()}
    return {"own_criterion": own, "leakage": leak} if own else {}


def bank_hash(bank: Bank) -> str:
    """sha256 of a bank's content (manifest entries + bases), independent of where it lies."""
    h = hashlib.sha256()
    h.update(json.dumps({"name": bank.name, "fingerprint": bank.generator_fingerprint}, sort_keys=True).encode())
    for s in bank.subspaces:
        h.update(json.dumps(s.manifest_entry(), sort_keys=True, default=str).encode())
        h.update(s.basis.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def card_hash(classifier: Classifier) -> str:
    return hashlib.sha256(json.dumps(classifier.card.to_dict(), sort_keys=True).encode()).hexdigest()


def _manifest_sha(bank_path: str | None) -> str | None:
    if not bank_path:
        return None
    p = Path(bank_path) / "manifest.json"
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


# -- audit directory -------------------------------------------------------------------------------
