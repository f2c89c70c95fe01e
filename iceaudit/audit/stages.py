"""What crosses between the audit's stages after the walks: the checked inputs and what was measured."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from iceaudit.audit.classifier import Classifier
from iceaudit.audit.sample import Faces
from iceaudit.audit.settings import AuditSettings
from iceaudit.bank.format import Bank, Subspace
from iceaudit.record import Driver, NullFloor, OwnCriterion
from iceaudit.stylegan2.networks import Generator


@dataclass
class AuditInputs:
    """One audit's checked inputs, as the images and the record need them."""

    classifier: Classifier
    G: Generator
    fingerprint: str  # the generator's
    bank: Bank
    subspaces: list[Subspace]  # the audited ones, in bank order
    settings: AuditSettings
    device: torch.device
    n: int  # faces
    batch: int  # images per batch, as the walks ended with it (after any out-of-memory halving)
    faces: Faces
    grids: dict[str, np.ndarray]  # subspace id -> walk steps (units)


@dataclass
class Measured:
    """What the walks measured and the statistics made of it."""

    results: pd.DataFrame  # long table: sample, seed, subspace, alpha, score, image_change
    counterfactuals: pd.DataFrame  # sample, seed, subspace, step, score_before, score_after
    drivers: list[Driver]  # ranked, strongest first
    null_floor: NullFloor
    per_face: pd.DataFrame  # sample, seed, score, positive, flipped_by, best_subspace, best_step
    own: dict[str, OwnCriterion] | None = None  # each walk's own effect per unit (iceaudit.audit.own_units)
