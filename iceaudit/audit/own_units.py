"""Each walk's unit, measured at the audited faces: how far one unit moves its own criterion.

A bank calibrates each subspace's unit on its own faces (one unit = one SD of the
subspace's criterion across the bank's calibration faces). The audited faces are others,
and the walk may be clipped to its valid range, so the audit measures the unit again
where it is used: the audited faces are walked to the two ends of the steps walked and
the subspace's criterion (a parser region's colour, landmark distances, an estimator)
read on both; the change per unit, in SDs of the criterion across the audited faces, is
the walk's own effect here (1.0 = the bank's calibration holds on these faces). Drivers
then also carry their slope per own-criterion SD (slope / own effect).

The criteria look through the bank's eyes (its landmark detector and face parser, named
in the bank's ``eyes_spec``). Where those cannot be loaded (an FFHQ bank without the FAN
or BiSeNet weights on this machine, say), the bank's build-time figure is kept and the
record says which it is.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import torch

from iceaudit.bank.edit import walk_images
from iceaudit.bank.format import Bank, Subspace
from iceaudit.bank.validate import Thresholds, per_unit_effect
from iceaudit.record import OwnCriterion

if TYPE_CHECKING:  # annotations only
    from iceaudit.criteria.eyes import Eyes
    from iceaudit.stylegan2.networks import Generator

AT_FACES = "audited faces"
AT_BUILD = "bank build"


@torch.no_grad()
def own_effect(G: "Generator", sub: Subspace, ws: torch.Tensor, eyes: "Eyes", chunk: int = 16) -> float:
    """Change of ``sub``'s criterion per unit along its walk, in SDs across the faces ``ws``.

    Args:
        G: the generator.
        sub: the subspace, its ``step_range`` the steps walked.
        ws: the faces, [N, num_ws, w_dim] (N >= 2).
        eyes: the landmark detector and parser the criterion reads through.
    """
    from iceaudit.criteria.spec import Measured

    lo, hi = sub.step_range
    frames = torch.cat([walk_images(G, sub, ws[i:i + chunk], [lo, 0.0, hi]).float().cpu()  # the eyes run on the CPU
                        for i in range(0, len(ws), chunk)])
    return per_unit_effect(Measured(json.loads(sub.criterion), eyes), frames[:, 0], frames[:, 1], frames[:, 2], hi - lo)


def own_criteria(G: "Generator", bank: Bank, subspaces: list[Subspace], ws: torch.Tensor,
                 eyes: "Eyes | None") -> dict[str, OwnCriterion]:
    """Every audited subspace's own effect per unit: at the audited faces where the eyes are at hand,
    else the bank's build-time figure (subspaces with neither are left out).

    Args:
        G: the generator.
        bank: the bank (its stored validation figures are the fallback).
        subspaces: the audited subspaces, with the steps they walked.
        ws: the audited faces' latents.
        eyes: the bank's eyes, or None where they could not be loaded.
    """
    out = {}
    for sub in subspaces:
        stored = bank[sub.id].validation or {}
        built = float(stored["own_effect"]) if "own_effect" in stored else None
        words = sub.unit or sub.criterion
        if eyes is not None and sub.criterion and len(ws) >= 2:
            effect = own_effect(G, sub, ws, eyes)
            out[sub.id] = OwnCriterion(criterion=words, effect_per_unit=effect, expected=1.0,
                                       ok=_within(effect, stored), measured_at=AT_FACES, faces=int(len(ws)),
                                       bank_effect_per_unit=built)
        elif built is not None:
            out[sub.id] = OwnCriterion(criterion=words, effect_per_unit=built, expected=1.0,
                                       ok=bool(stored.get("passed", True)), measured_at=AT_BUILD)
    return out


def _within(effect: float, stored: dict) -> bool:
    """The subspace's own-effect thresholds (as stored by its validation) hold at these faces."""
    t = Thresholds(**stored.get("thresholds", {}))
    return t.min_own_effect <= effect <= t.max_own_effect


def bank_eyes(bank: Bank) -> tuple["Eyes | None", str | None]:
    """The bank's eyes (from its ``eyes_spec``), or None and why they could not be loaded."""
    from iceaudit.criteria.eyes import load_eyes

    spec = bank.meta.get("eyes_spec") or {}
    if not spec:
        return None, "the bank names no eyes (landmark detector, parser)"
    try:
        return load_eyes(None, None, defaults=spec), None
    except Exception as err:  # noqa: BLE001 - an optional measurement: weights absent or unloadable here
        return None, f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
