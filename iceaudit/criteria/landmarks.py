"""Landmark criteria: a set of points (absolute or centred) and texture attached to geometry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from iceaudit.criteria.base import Criterion, LandmarkModel, expand_to
from iceaudit.criteria.pixels import resize
from iceaudit.criteria.base import FaceParser
from iceaudit.criteria.regions import region_mask, resolve_labels
from iceaudit.errors import UserError


def _need(model: LandmarkModel | None, what: str) -> LandmarkModel:
    if model is None:
        raise UserError(f"criterion {what} needs a landmark model (--landmarks)")
    return model


_AXES = {"x": 0, "y": 1}


class LandmarkSet(Criterion):
    """y_act = the chosen landmarks, y_sup = all others; ``centred`` subtracts each set's mean,
    so that only the shape of the set counts, not where it sits. ``axis = "x"`` or ``"y"`` keeps
    only that coordinate of the chosen points in y_act and moves the other into y_sup, so that
    e.g. the eyes' vertical opening can be sought with their width held."""

    def __init__(self, model: LandmarkModel | None, indices: Sequence[int], *, centred: bool = False,
                 axis: str | None = None) -> None:
        if axis is not None and axis not in _AXES:
            raise UserError(f"landmarks axis must be x or y, not {axis!r}")
        self.axis = axis
        self.model = _need(model, f"landmarks{list(indices)[:3]}…")
        k = int(self.model.num_points)
        self.indices = sorted(int(i) for i in indices)
        bad = [i for i in self.indices if not 0 <= i < k]
        if bad:
            raise UserError(f"landmark indices {bad} out of range for a {k}-point landmark model")
        self.others = [i for i in range(k) if i not in set(self.indices)]
        self.centred = centred
        idx = list(self.indices)
        contiguous = idx == list(range(idx[0], idx[0] + len(idx)))
        points = f"{idx[0]}-{idx[-1]}" if contiguous and len(idx) > 2 else ",".join(map(str, idx))
        self.name = f"{'shape' if centred else 'landmarks'}[{points}]" + (f".{axis}" if axis else "")

    def evaluate(self, images, ctx):
        pts = self.model(images)
        act, sup = pts[:, self.indices], pts[:, self.others]
        if self.centred:
            act = act - act.mean(dim=1, keepdim=True)
            if sup.shape[1]:
                sup = sup - sup.mean(dim=1, keepdim=True)
        if self.axis is not None:
            keep = _AXES[self.axis]
            return act[..., keep], torch.cat([sup.flatten(1), act[..., 1 - keep]], dim=1)
        return act.flatten(1), sup.flatten(1)


@dataclass
class TextureContext:
    tri: torch.Tensor  # [N, P, 3] vertex indices of each pixel's triangle
    bary: torch.Tensor  # [N, P, 3] barycentric weights
    weight: torch.Tensor  # [N, P] 1 inside the region, 0 outside


def _corners() -> np.ndarray:
    return np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


class TextureOnGeometry(Criterion):
    """Texture carried by the landmark geometry (ICE).

    `prepare` triangulates the landmarks + image corners and stores each pixel's
    barycentric coordinates; `evaluate` moves the pixels with the new landmarks and
    samples the new image there. An edit that only moves geometry (texture rides
    along) leaves y_act unchanged, so as a suppressor it lets shape move but not
    texture. y_act = colours of the region's pixels at their moved positions;
    y_sup is empty.
    """

    def __init__(self, model: LandmarkModel | None, parser: FaceParser | None = None,
                 regions: Sequence[str] = (), *, size: int = 48) -> None:
        self.model = _need(model, "texture-on-geometry")
        self.parser, self.regions, self.size = parser, list(regions), int(size)
        if self.regions:
            if parser is None:
                raise UserError("texture-on-geometry over regions needs a face parser (--parser)")
            self.label_ids = resolve_labels(self.regions, list(parser.labels))
        self.name = f"texture[{'+'.join(self.regions) or 'all'}]"

    def prepare(self, images):
        from scipy.spatial import Delaunay

        n, s = images.shape[0], self.size
        pts = self.model(images).detach().cpu().double().numpy()
        ys, xs = np.meshgrid((np.arange(s) + 0.5) / s, (np.arange(s) + 0.5) / s, indexing="ij")
        pix = np.stack([xs.ravel(), ys.ravel()], 1)
        if self.regions:
            m = region_mask(self.parser(images), self.label_ids)
            weight = F.interpolate(m, size=(s, s), mode="nearest").flatten(1)
        else:
            weight = torch.ones(n, s * s)
        tris, barys = [], []
        for i in range(n):
            verts = np.concatenate([np.clip(pts[i], 0, 1), _corners()])
            d = Delaunay(verts, qhull_options="QJ")
            simplex = d.find_simplex(pix)
            simplex = np.where(simplex < 0, 0, simplex)
            t = d.transform[simplex]
            b2 = np.einsum("pij,pj->pi", t[:, :2], pix - t[:, 2])
            bary = np.concatenate([b2, 1 - b2.sum(1, keepdims=True)], 1)
            tris.append(d.simplices[simplex])
            barys.append(bary)
        dev, dt = images.device, images.dtype
        return TextureContext(torch.as_tensor(np.stack(tris), device=dev),
                              torch.as_tensor(np.stack(barys), device=dev, dtype=dt), weight.to(dev, dt))

    def evaluate(self, images, ctx: TextureContext):
        n = images.shape[0]
        pts = self.model(images)
        verts = torch.cat([pts, torch.as_tensor(_corners(), dtype=pts.dtype, device=pts.device).expand(n, 4, 2)], 1)
        tri, bary, weight = expand_to(ctx.tri, n), expand_to(ctx.bary, n), expand_to(ctx.weight, n)
        idx = tri.reshape(n, -1, 1).expand(-1, -1, 2)
        corner_pts = torch.gather(verts, 1, idx).reshape(n, -1, 3, 2)
        pos = (corner_pts * bary[..., None]).sum(2)  # [N, P, 2] in [0, 1]
        grid = (pos * 2 - 1)[:, None]  # [N, 1, P, 2]
        x = resize(images, self.size)
        colours = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
        act = (colours * weight[:, None]).flatten(1)
        return act, act[:, :0]
