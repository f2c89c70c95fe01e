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


def _facelab(what: str):
    try:
        from iceaudit.facelab import eyes as facelab_eyes
    except ImportError:
        raise UserError(
            f"the FaceLab {what} is not available in this build (iceaudit.facelab.eyes is missing)",
            hint="Pass real weights instead (see `iceaudit bank build --help`).",
        ) from None
    return facelab_eyes


def facelab_landmarks():
    """FaceLab's landmark net: (x, y) in [0, 1], ``groups`` jaw, brows, nose, eyes, mouth."""
    return _facelab("landmark net").landmark_model()


def facelab_parser():
    """FaceLab's parser: logits with ``labels`` = FaceLab's label names."""
    return _facelab("face parser").face_parser()


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
