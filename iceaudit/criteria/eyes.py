"""Load the eyes criteria look through: landmark model and face parser.

``--landmarks``: a FAN weights file (``2DFAN4-11f355bf06.pth.tar``), ``fan`` (the
face-alignment cache), or ``facelab`` / ``demo`` (FaceLab's landmark net).
``--parser``: a BiSeNet checkpoint path, or ``facelab`` / ``demo``.
"""
from __future__ import annotations

from pathlib import Path

from iceaudit.criteria.base import Eyes
from iceaudit.errors import UserError

FACELAB_NAMES = ("facelab", "demo")


class FaceLabLandmarks:
    """FaceLab's landmark net in the criteria convention: (x, y) in [0, 1], named groups."""

    def __init__(self, net, groups, names) -> None:
        self.net, self.groups, self.names = net, {k: list(v) for k, v in groups.items()}, list(names)
        self.num_points = len(self.names)

    def __call__(self, images):
        return self.net(images) / images.shape[-1]


def _facelab(what: str):
    try:
        from iceaudit.facelab import analysis, render
    except ImportError:
        raise UserError(
            f"the FaceLab {what} is not available in this build (iceaudit.facelab.analysis is missing)",
            hint="Pass real weights instead (see `iceaudit bank build --help`).",
        ) from None
    return analysis, render


def facelab_landmarks():
    analysis, render = _facelab("landmark net")
    return FaceLabLandmarks(analysis.load_landmarker(), render.LANDMARK_GROUPS, render.LANDMARK_NAMES)


def facelab_parser():
    """FaceLab's parser (logits over `render.LABEL_NAMES`, exposed as ``labels``)."""
    analysis, render = _facelab("face parser")
    net = analysis.load_parser()

    class _Parser:
        labels = list(render.LABEL_NAMES)
        model = net

        def __call__(self, images):
            return net(images)

    return _Parser()


def load_landmarks(spec: str | None, *, box=(0.5, 0.55, 0.75)):
    if spec in (None, "", "none"):
        return None
    if spec in FACELAB_NAMES:
        return facelab_landmarks()
    from iceaudit.criteria.fan import FanLandmarks

    return FanLandmarks.from_file(None if spec == "fan" else Path(spec), box=box)


def load_parser(spec: str | None, *, label_order: str = "bisenet", size: int = 512):
    if spec in (None, "", "none"):
        return None
    if spec in FACELAB_NAMES:
        return facelab_parser()
    from iceaudit.criteria.bisenet import BiSeNetParser

    return BiSeNetParser.from_file(spec, order=label_order, size=size)


def load_eyes(landmarks: str | None, parser: str | None, *, label_order: str = "bisenet") -> Eyes:
    return Eyes(landmarks=load_landmarks(landmarks), parser=load_parser(parser, label_order=label_order))
