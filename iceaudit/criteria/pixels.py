"""Pixel criteria: masked pixels, region colour and shading, region area, high frequency."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from iceaudit.criteria.base import Criterion, FaceParser, expand_to
from iceaudit.criteria.regions import region_mask, resolve_labels
from iceaudit.errors import UserError


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@dataclass
class MaskContext:
    mask: torch.Tensor  # [N or 1, 1, size, size] (shading: 2 channels, the left and right halves)
    box: tuple[int, int, int, int]  # y0, y1, x0, x1 (union over the batch)


class _Masked(Criterion):
    kind = "masked"  # the criterion's name is kind[regions]

    def __init__(self, parser: FaceParser | None, regions: Sequence[str], *, size: int = 64,
                 dilate: int = 0, erode: int = 0, ring: int = 0) -> None:
        if parser is None:
            raise UserError(f"criterion over regions {list(regions)} needs a face parser (--parser)")
        self.parser, self.regions, self.size = parser, list(regions), int(size)
        self.label_ids = resolve_labels(self.regions, list(parser.labels))
        self.dilate, self.erode, self.ring = dilate, erode, ring
        self.name = f"{self.kind}[{'+'.join(self.regions)}]"

    def _resized(self, images: torch.Tensor, ctx: MaskContext) -> tuple[torch.Tensor, torch.Tensor]:
        """The images at the criterion's size and the mask expanded to their batch."""
        x = resize(images, self.size)
        return x, expand_to(ctx.mask, x.shape[0])

    def prepare(self, images: torch.Tensor) -> MaskContext:
        logits = self.parser(images)
        m = region_mask(logits, self.label_ids, dilate_px=self.dilate, erode_px=self.erode, ring_px=self.ring)
        m = F.interpolate(m, size=(self.size, self.size), mode="nearest")
        rows = m.amax(dim=(0, 1, 3)).nonzero()
        cols = m.amax(dim=(0, 1, 2)).nonzero()
        if len(rows) == 0:  # region absent: an empty box keeps shapes valid, act is empty
            box = (0, 0, 0, 0)
        else:
            box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        return MaskContext(m, box)


class MaskedPixels(_Masked):
    """y_act = pixels inside the region (cropped to its box), y_sup = pixels outside."""

    kind = "pixels"

    def evaluate(self, images, ctx: MaskContext):
        x, m = self._resized(images, ctx)
        y0, y1, x0, x1 = ctx.box
        act = (x * m)[:, :, y0:y1, x0:x1].flatten(1)
        sup = (x * (1 - m)).flatten(1)
        return act, sup


class RegionColour(_Masked):
    """y_act = mean RGB inside the region; y_sup = the image minus that mean inside the region."""

    kind = "colour"

    def evaluate(self, images, ctx: MaskContext):
        x, m = self._resized(images, ctx)
        area = m.sum(dim=(2, 3)).clamp_min(1.0)
        mean = (x * m).sum(dim=(2, 3)) / area  # [N, 3]
        sup = (x - m * mean[:, :, None, None]).flatten(1)
        return mean, sup


class RegionShading(_Masked):
    """y_act = mean RGB of the region's left half minus its right half (split at the region's
    mean column, per face): which side is lit. A uniform colour change leaves it at zero, so as
    a suppressor it holds the light direction while letting the region's colour move; y_sup is
    empty."""

    kind = "shading"

    def prepare(self, images: torch.Tensor) -> MaskContext:
        ctx = super().prepare(images)
        m = ctx.mask
        cols = torch.arange(m.shape[-1], dtype=m.dtype, device=m.device)
        centre = (m * cols).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp_min(1.0)  # [N]
        left = (cols < centre[:, None]).to(m.dtype)[:, None, None, :]
        return MaskContext(torch.cat([m * left, m * (1 - left)], dim=1), ctx.box)

    def evaluate(self, images, ctx: MaskContext):
        x, halves = self._resized(images, ctx)  # halves [N, 2, S, S]: left, right
        left, right = (
            (x * h).sum(dim=(2, 3)) / h.sum(dim=(2, 3)).clamp_min(1.0) for h in halves.split(1, dim=1)
        )
        act = left - right  # [N, 3]
        return act, act[:, :0]


class RegionArea(Criterion):
    """y_act = the parser's soft area of the region (mean probability over the image,
    differentiable: it grows when glasses, a beard or hair appear); y_sup is empty."""

    def __init__(self, parser: FaceParser | None, regions: Sequence[str], *, size: int = 64) -> None:
        if parser is None:
            raise UserError(f"criterion over regions {list(regions)} needs a face parser (--parser)")
        self.parser, self.regions, self.size = parser, list(regions), int(size)
        self.label_ids = resolve_labels(self.regions, list(parser.labels))
        self.name = f"area[{'+'.join(self.regions)}]"

    def evaluate(self, images, ctx):
        p = self.parser(resize(images, self.size)).softmax(dim=1)[:, self.label_ids].sum(1)
        area = p.flatten(1).mean(1, keepdim=True)
        return area, area[:, :0]


class HighFrequency(Criterion):
    """y_act = x - up(down(x, low)) (fine texture), y_sup = down(x, low) (the coarse image)."""

    def __init__(self, *, low: int = 24, size: int = 64) -> None:
        self.low, self.size = int(low), int(size)
        self.name = f"highfreq[{self.low}]"

    def evaluate(self, images, ctx):
        x = resize(images, self.size)
        low = resize(x, self.low)
        up = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (x - up).flatten(1), low.flatten(1)


class WholeImage(Criterion):
    """y_act = the whole image (resized); y_sup is empty. Useful as a suppressor of everything."""

    def __init__(self, *, size: int = 32) -> None:
        self.size = int(size)
        self.name = f"image[{self.size}]"

    def evaluate(self, images, ctx):
        x = resize(images, self.size).flatten(1)
        return x, x[:, :0]
