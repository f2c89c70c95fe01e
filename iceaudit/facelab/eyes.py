"""FaceLab's face-analysis nets in the shapes the criteria expect.

`iceaudit.criteria.eyes` resolves ``--landmarks facelab`` / ``--parser facelab``
to these (see `iceaudit.criteria.base.LandmarkModel` and `FaceParser`):

- `landmark_model()`: images [N,3,R,R] in [-1,1] -> landmarks [N,35,2] as (x, y) in
  [0, 1] image coordinates; ``num_points`` = 35, ``groups`` = jaw, brows, nose, eyes,
  mouth (indices in `render.LANDMARK_GROUPS`).
- `face_parser()`: images -> logits [N,9,R,R]; ``labels`` = `render.LABEL_NAMES`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from iceaudit.facelab.analysis import load_landmarker, load_parser
from iceaudit.facelab.render import LABEL_NAMES, LANDMARK_GROUPS, LANDMARK_NAMES, NUM_LANDMARKS


class _FrozenNet(nn.Module):
    """A trained FaceLab net with its weights frozen (criteria differentiate through it)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        for p in self.net.parameters():
            p.requires_grad_(False)


class FaceLabLandmarks(_FrozenNet):
    num_points = NUM_LANDMARKS
    groups = {name: list(idx) for name, idx in LANDMARK_GROUPS.items()}
    names = list(LANDMARK_NAMES)

    def __init__(self):
        super().__init__(load_landmarker())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images) / images.shape[-1]


class FaceLabParser(_FrozenNet):
    labels = list(LABEL_NAMES)

    def __init__(self):
        super().__init__(load_parser())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def landmark_model() -> FaceLabLandmarks:
    return FaceLabLandmarks().eval()


def face_parser() -> FaceLabParser:
    return FaceLabParser().eval()
