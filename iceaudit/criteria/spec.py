"""Criteria from recipe specs, and the scalar "measure" of each that units are calibrated on.

A spec is a small dict (a TOML inline table), e.g.
``{kind = "region_colour", regions = ["skin", "nose"], size = 64, measure = "luminance"}``.
Kinds: ``region_colour``, ``region_shading`` (left half minus right half of the region: the light
direction), ``masked_pixels``, ``region_area`` (soft parser area),
``landmarks`` (``group = "eyes"`` named by the landmark model, ``points = [36, 47]`` as an
inclusive range, or ``indices = [...]``; ``centred``; ``axis = "x"`` or ``"y"``), ``texture``, ``high_frequency``, ``image``,
``estimator`` (an attribute estimator net, criteria/estimator.py). The measure turns y_act into one number per face (mean skin luminance,
spread of the eye landmarks...), so one unit of a walk is a stated change of it.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping

import torch

from iceaudit.criteria.base import Criterion, Eyes, expand_to
from iceaudit.criteria.landmarks import LandmarkSet, TextureOnGeometry
from iceaudit.criteria.pixels import HighFrequency, MaskedPixels, RegionArea, RegionColour, RegionShading, WholeImage
from iceaudit.errors import UserError

KINDS = ("region_colour", "region_shading", "masked_pixels", "region_area", "landmarks", "texture",
         "high_frequency", "image", "estimator")
_DEFAULT_MEASURE = {
    "region_colour": "luminance", "region_shading": "luminance", "masked_pixels": "luminance", "region_area": "mean", "landmarks": "spread",
    "texture": "rms", "high_frequency": "rms", "image": "rms", "estimator": "mean",
}


def spec_id(spec: Mapping[str, Any]) -> str:
    """A stable text key of a spec (used for caches and as the criterion's record)."""
    return json.dumps(dict(spec), sort_keys=True, separators=(",", ":"))


def _points(spec, model=None) -> list[int]:
    if "group" in spec:
        groups = getattr(model, "groups", None) or {}
        if spec["group"] not in groups:
            raise UserError(
                f"landmark group {spec['group']!r} is not defined by this landmark model "
                f"(it has: {', '.join(groups) or 'no named groups'})"
            )
        return list(groups[spec["group"]])
    if "indices" in spec:
        return [int(i) for i in spec["indices"]]
    if "points" in spec:
        a, b = spec["points"]
        return list(range(int(a), int(b) + 1))
    raise UserError(f"landmarks criterion needs `group`, `points = [first, last]` or `indices = [...]`: {spec_id(spec)}")


def build_criterion(spec: Mapping[str, Any], eyes: Eyes) -> Criterion:
    kind = spec.get("kind")
    size = int(spec.get("size", 64))
    morph = {k: int(spec.get(k, 0)) for k in ("dilate", "erode", "ring")}
    if kind == "region_colour":
        return RegionColour(eyes.parser, spec["regions"], size=size, **morph)
    if kind == "region_shading":
        return RegionShading(eyes.parser, spec["regions"], size=size, **morph)
    if kind == "masked_pixels":
        return MaskedPixels(eyes.parser, spec["regions"], size=size, **morph)
    if kind == "landmarks":
        return LandmarkSet(eyes.landmarks, _points(spec, eyes.landmarks), centred=bool(spec.get("centred", False)),
                           axis=spec.get("axis"))
    if kind == "region_area":
        return RegionArea(eyes.parser, spec["regions"], size=size)
    if kind == "texture":
        return TextureOnGeometry(eyes.landmarks, eyes.parser, spec.get("regions", []), size=int(spec.get("size", 48)))
    if kind == "high_frequency":
        return HighFrequency(low=int(spec.get("low", 24)), size=size)
    if kind == "image":
        return WholeImage(size=int(spec.get("size", 32)))
    if kind == "estimator":
        from iceaudit.criteria.estimator import AttributeEstimator

        if "model" not in spec:
            raise UserError(f"estimator criterion needs `model` (a TorchScript path or facelab-age): {spec_id(spec)}")
        return AttributeEstimator(str(spec["model"]))
    raise UserError(f"unknown criterion kind {kind!r} in {spec_id(spec)}; known: {', '.join(KINDS)}")


# --- measures ------------------------------------------------------------------

def _pts(crit, act):
    # one coordinate per point when the criterion keeps a single axis
    return act.reshape(act.shape[0], -1, 1 if getattr(crit, "axis", None) else 2)


def _spread(p, axis=None):
    c = p - p.mean(dim=1, keepdim=True)
    if axis is not None:
        c = c[..., axis]
    return c.pow(2).flatten(1).mean(1).sqrt()


def _inside_mean(crit, act, ctx):
    if isinstance(crit, (RegionColour, RegionShading)):
        return act  # [N, 3]
    m = expand_to(ctx.mask, act.shape[0])
    y0, y1, x0, x1 = ctx.box
    area = m[:, :, y0:y1, x0:x1].flatten(1).sum(1).clamp_min(1)
    return act.reshape(act.shape[0], 3, -1).sum(-1) / area[:, None]


def _contrast(crit, act, ctx):
    # standard deviation of the pixels inside the mask about their own mean, averaged over RGB
    y0, y1, x0, x1 = ctx.box
    m = expand_to(ctx.mask, act.shape[0])[:, :, y0:y1, x0:x1]
    x = act.reshape(act.shape[0], 3, y1 - y0, x1 - x0)
    area = m.sum(dim=(2, 3)).clamp_min(1)
    mean = (x * m).sum(dim=(2, 3)) / area
    var = (((x - mean[:, :, None, None]) * m) ** 2).sum(dim=(2, 3)) / area
    return var.mean(1).clamp_min(1e-12).sqrt()


def _arch(p):
    # y grows downward: grows as the first and last points rise against the others
    return p[:, 1:-1, 1].mean(1) - 0.5 * (p[:, 0, 1] + p[:, -1, 1])


MEASURES: dict[str, Callable] = {
    "luminance": lambda c, a, ctx: _inside_mean(c, a, ctx).mean(1),
    "red": lambda c, a, ctx: _inside_mean(c, a, ctx)[:, 0],
    "green": lambda c, a, ctx: _inside_mean(c, a, ctx)[:, 1],
    "blue": lambda c, a, ctx: _inside_mean(c, a, ctx)[:, 2],
    "redness": lambda c, a, ctx: (lambda m: m[:, 0] - 0.5 * (m[:, 1] + m[:, 2]))(_inside_mean(c, a, ctx)),
    "spread": lambda c, a, ctx: _spread(_pts(c, a)),
    "spread_x": lambda c, a, ctx: _spread(_pts(c, a), 0),
    "spread_y": lambda c, a, ctx: _spread(_pts(c, a), 1),
    "mean_x": lambda c, a, ctx: _pts(c, a)[..., 0].mean(1),
    "mean_y": lambda c, a, ctx: _pts(c, a)[..., 1].mean(1),
    # for an ordered contour such as (mouth corner, lip centre, mouth corner): grows with a smile
    "arch": lambda c, a, ctx: _arch(_pts(c, a)),
    "rms": lambda c, a, ctx: a.pow(2).mean(1).sqrt(),
    "contrast": _contrast,  # texture inside a masked_pixels region (lines, shadows), not its mean colour
    "mean": lambda c, a, ctx: a.mean(1),  # for one-axis landmarks: the mean coordinate
}


class Measured:
    """A criterion plus the scalar measure of its y_act: `value(images, ctx) -> [N]`."""

    def __init__(self, spec: Mapping[str, Any], eyes: Eyes) -> None:
        self.spec = dict(spec)
        self.criterion = build_criterion(spec, eyes)
        self.measure = spec.get("measure", _DEFAULT_MEASURE[spec["kind"]])
        if self.measure not in MEASURES:
            raise UserError(f"unknown measure {self.measure!r} in {spec_id(spec)}; known: {', '.join(MEASURES)}")
        if self.measure in ("red", "green", "blue", "redness", "luminance") and spec["kind"] not in (
                "region_colour", "region_shading", "masked_pixels"):
            raise UserError(f"measure {self.measure!r} needs a region_colour, region_shading or masked_pixels "
                            f"criterion: {spec_id(spec)}")
        if spec["kind"] == "landmarks" and spec.get("axis") and self.measure not in ("spread", "mean"):
            raise UserError(f"a landmarks criterion with one axis has one coordinate per point; use measure "
                            f"spread or mean, not {self.measure!r}: {spec_id(spec)}")
        if self.measure == "contrast" and spec["kind"] != "masked_pixels":
            raise UserError(f"measure 'contrast' needs a masked_pixels criterion: {spec_id(spec)}")

    @property
    def name(self) -> str:
        return f"{self.measure} of {self.criterion.name}"

    def prepare(self, images):
        with torch.no_grad():
            return self.criterion.prepare(images.detach())

    def value(self, images, ctx) -> torch.Tensor:
        act, _ = self.criterion.evaluate(images, ctx)
        return MEASURES[self.measure](self.criterion, act, ctx)

    def __call__(self, images) -> torch.Tensor:
        return self.value(images, self.prepare(images))
