"""White-box classifiers: each reads one known statistic of the image, so its truth is known.

Planted classifiers are trained networks: what they read is what the oracle measures.
These are the other half of the audit's validation: tiny modules whose decision is a
fixed pixel statistic of fixed regions of the 64 × 64 frame (regions chosen where a
FaceLab part sits on at least ~80 % of faces), standardised on FaceLab renders so that
the threshold 0 splits the faces about in half:

    skin_luma          mean luminance of both cheeks and the forehead      (skin tone)
    background_luma    mean luminance of the frame's left and right edges  (background brightness)
    mouth_dark         darkness of the mouth box relative to the cheeks     (mouth opening, and skin
                                                                         tone: the lips take its colour)
    hair_luma          mean luminance of the crown                         (hair colour)
    skin_and_background  skin_luma + background_luma                       (two factors)
    skin_mid           -(skin_luma)²: highest at a middle skin tone        (sign differs across faces)
    constant           0 everywhere                                        (nothing)

Every one takes generator images ``[N, 3, 64, 64]`` in [-1, 1] and returns a logit
(card: input 64, value range [-1, 1], head logit, threshold 0). The audit sees them as
any in-memory module; the oracle scores FaceLab renders with the same module.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from iceaudit.errors import UserError

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 in pixels of the 64 × 64 frame
REGIONS: dict[str, tuple[Box, ...]] = {
    "skin": ((32, 40, 12, 22), (32, 40, 42, 52), (17, 21, 24, 40)),
    "background": ((8, 56, 0, 4), (8, 56, 60, 64)),
    "mouth": ((45, 49, 28, 36),),  # the lower lip and the gap: teeth (above) would lighten an open mouth
    "hair": ((4, 10, 22, 42),),
}
LUMA = (0.299, 0.587, 0.114)
CARD = {"input_size": 64, "crop": "ffhq", "value_range": [-1, 1], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
        "channel_order": "RGB", "head": "logit", "index": 0, "threshold": 0.0}
CALIBRATION_SEED = 20261206
CALIBRATION_FACES = 512


def region_luma(images: torch.Tensor, region: str) -> torch.Tensor:
    """Mean luminance (in [-1, 1] image units) of `region`'s boxes, one value per image."""
    if images.ndim != 4 or images.shape[1:] != (3, 64, 64):
        raise UserError(f"white-box classifiers read [N, 3, 64, 64] images, got {tuple(images.shape)}")
    luma = torch.einsum("nchw,c->nhw", images.float(), images.new_tensor(LUMA, dtype=torch.float32))
    total = sum(luma[:, y0:y1, x0:x1].sum((1, 2)) for y0, y1, x0, x1 in REGIONS[region])
    area = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in REGIONS[region])
    return total / area


class Standardised(nn.Module):
    """(statistic - centre) / scale of one region's luminance (relative to another's, with `per`:
    the ratio of their luminances in [0, 1] units, so a lighter or darker skin scales both);
    sign -1 reads darkness."""

    def __init__(self, region: str, sign: float = 1.0, per: str | None = None) -> None:
        super().__init__()
        self.region, self.sign, self.per = region, float(sign), per
        self.register_buffer("centre", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        value = region_luma(images, self.region)
        if self.per is not None:
            value = (value + 1) / (region_luma(images, self.per) + 1).clamp_min(1e-3)
        return self.sign * value

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.raw(images) - self.centre) / self.scale

    def calibrate(self, images: torch.Tensor) -> "Standardised":
        values = self.raw(images)
        self.centre.fill_(float(values.median()))
        self.scale.fill_(float(values.std().clamp_min(1e-6)))
        return self


class Sum(nn.Module):
    """The sum of standardised statistics: a decision read from two parts at once."""

    def __init__(self, *parts: Standardised) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return sum(p(images) for p in self.parts)


class Peaked(nn.Module):
    """1 - z² of a standardised statistic: positive near its median, negative at both ends."""

    def __init__(self, part: Standardised) -> None:
        super().__init__()
        self.part = part

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.part(images) ** 2


class Constant(nn.Module):
    """The same score for every image."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.new_zeros(images.shape[0])


# name -> (builder, the FaceLab factors its truth is about, one line saying what it reads)
WHITEBOX: dict[str, tuple[Callable[[], nn.Module], tuple[str, ...], str]] = {
    "skin_luma": (lambda: Standardised("skin"), ("skin_tone",), "mean luminance of the cheeks and forehead"),
    "background_luma": (lambda: Standardised("background"), ("bg_brightness",),
                        "mean luminance of the frame's left and right edges"),
    "mouth_dark": (lambda: Standardised("mouth", sign=-1.0, per="skin"), ("mouth_open",),
                   "darkness of the mouth box relative to the cheeks"),
    "hair_luma": (lambda: Standardised("hair"), ("hair_colour",), "mean luminance of the crown"),
    "skin_and_background": (lambda: Sum(Standardised("skin"), Standardised("background")),
                            ("skin_tone", "bg_brightness"), "cheek/forehead luminance plus edge luminance"),
    "skin_mid": (lambda: Peaked(Standardised("skin")), ("skin_tone",),
                 "highest at a middle skin luminance, lower both ways (sign differs across faces)"),
    "constant": (Constant, (), "nothing: the same score for every face"),
}


def calibration_images() -> torch.Tensor:
    """FaceLab renders from the prior (fixed seed) that set every statistic's centre and scale."""
    from iceaudit.facelab.render import render_seed

    return render_seed(CALIBRATION_FACES, CALIBRATION_SEED, 64).images


def whitebox(name: str, images: torch.Tensor | None = None) -> nn.Module:
    """The white-box classifier `name`, standardised on `images` (default: FaceLab renders).

    Args:
        name: one of ``WHITEBOX``.
        images: ``[N, 3, 64, 64]`` in [-1, 1] to take each statistic's median and SD from.
    """
    if name not in WHITEBOX:
        raise UserError(f"unknown white-box classifier {name!r}; one of {', '.join(WHITEBOX)}")
    model = WHITEBOX[name][0]()
    parts = [m for m in model.modules() if isinstance(m, Standardised)]
    if parts:
        imgs = calibration_images() if images is None else images
        for p in parts:
            p.calibrate(imgs)
    return model.eval()
