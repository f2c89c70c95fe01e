"""Face-parser label names, the label orders in circulation, and hard masks.

Region names in recipes are canonical (the zllrunning / facexlib BiSeNet
vocabulary) plus groups ("brows" = l_brow + r_brow ...) and FaceLab's labels.
A parser declares its own label list; names are resolved against it, so a
parser trained with another label order can never silently swap regions.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from iceaudit.errors import UserError

# The three 19-class CelebAMask-HQ label orders (notes.md), in canonical names.
LABEL_ORDERS: dict[str, list[str]] = {
    # zllrunning/face-parsing.PyTorch and facexlib's BiSeNet
    "bisenet": ["background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
                "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat"],
    # facexlib's ParseNet
    "parsenet": ["background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
                 "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"],
    # facer farl/celebm, its names translated: face->skin, rr/lr ears, rb/lb brows, re/le eyes,
    # imouth->mouth, llip/ulip, eyeg->eye_g, earr->ear_r
    "facer": ["background", "neck", "skin", "cloth", "r_ear", "l_ear", "r_brow", "l_brow", "r_eye",
              "l_eye", "nose", "mouth", "l_lip", "u_lip", "hair", "eye_g", "hat", "ear_r", "neck_l"],
}
LABEL_ORDER_ALIASES = {"zllrunning": "bisenet", "facexlib-bisenet": "bisenet", "facexlib-parsenet": "parsenet",
                       "farl": "facer", "celebm": "facer"}

FACELAB_LABELS = ["background", "skin", "hair", "brows", "eyes", "nose", "mouth", "glasses", "beard"]

GROUPS: dict[str, list[str]] = {
    "brows": ["l_brow", "r_brow"],
    "eyes": ["l_eye", "r_eye"],
    "ears": ["l_ear", "r_ear"],
    "lips": ["u_lip", "l_lip"],
    "glasses": ["eye_g"],
    "face": ["skin"],
}


def label_order(name: str) -> list[str]:
    key = LABEL_ORDER_ALIASES.get(name, name)
    if key not in LABEL_ORDERS:
        raise UserError(f"unknown parser label order {name!r}; known: {', '.join(sorted(LABEL_ORDERS))}")
    return list(LABEL_ORDERS[key])


def resolve_labels(names: Iterable[str], labels: Sequence[str]) -> list[int]:
    """Channel indices of the parser's ``labels`` for the requested region names."""
    idx: list[int] = []
    for name in names:
        if name in labels:
            idx.append(labels.index(name))
        elif name in GROUPS and any(m in labels for m in GROUPS[name]):
            idx.extend(labels.index(m) for m in GROUPS[name] if m in labels)
        else:
            raise UserError(
                f"region {name!r} is not a label of this face parser (it has: {', '.join(labels)})"
            )
    return sorted(set(idx))


def dilate(mask: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 0:
        return mask
    return F.max_pool2d(mask, 2 * k + 1, stride=1, padding=k)


def erode(mask: torch.Tensor, k: int) -> torch.Tensor:
    return 1 - dilate(1 - mask, k)


def region_mask(
    logits: torch.Tensor, label_ids: Sequence[int], *, dilate_px: int = 0, erode_px: int = 0, ring_px: int = 0
) -> torch.Tensor:
    """Hard-argmax union mask [N, 1, H, W] in {0, 1}; optional dilate / erode / outer ring."""
    hard = logits.argmax(dim=1, keepdim=True)
    m = torch.zeros_like(hard, dtype=logits.dtype)
    for i in label_ids:
        m = torch.maximum(m, (hard == i).to(logits.dtype))
    m = erode(dilate(m, dilate_px), erode_px)
    if ring_px:
        m = dilate(m, ring_px) * (1 - m)
    return m
