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


def load_landmarks(spec: str | None, *, size: int = 256, box=(0.5, 0.55, 0.75)):
    """The landmark model ``spec`` names (None when it names none).

    Args:
        spec: a FAN weights file, ``fan`` (face-alignment's cache), ``facelab`` / ``demo``, or none.
        size: the crop FAN runs at (256 for 2DFAN-4).
        box: FAN's face box (centre x, centre y, side) as shares of the image.
    """
    if spec in (None, "", "none"):
        return None
    if spec in FACELAB_NAMES:
        return facelab_landmarks()
    from iceaudit.criteria.fan import FanLandmarks

    return FanLandmarks.from_file(None if spec == "fan" else Path(spec), size=size, box=box)


def load_parser(spec: str | None, *, label_order: str = "bisenet", size: int = 512):
    """The face parser ``spec`` names (None when it names none).

    Args:
        spec: a BiSeNet checkpoint, ``facelab`` / ``demo``, or none. ``bisenet`` alone (a recipe's
            placeholder) is refused: the checkpoint cannot be downloaded here.
        label_order: the checkpoint's label order (`iceaudit.criteria.bisenet.label_order`).
        size: the resolution the parser runs at.
    """
    if spec in (None, "", "none"):
        return None
    if spec in FACELAB_NAMES:
        return facelab_parser()
    if spec == "bisenet":
        raise UserError("this recipe needs a BiSeNet face parser checkpoint", hint="Pass it with --parser PATH.")
    from iceaudit.criteria.bisenet import BiSeNetParser

    return BiSeNetParser.from_file(spec, order=label_order, size=size)


def load_eyes(landmarks: str | None, parser: str | None, *, label_order: str = "bisenet", fan_size: int = 256,
              parser_size: int = 512, defaults: dict | None = None) -> Eyes:
    """The eyes a recipe's criteria look through.

    Args:
        landmarks, parser: what to load (see `load_landmarks`, `load_parser`); None: the default.
        label_order, fan_size, parser_size: as in `load_landmarks` / `load_parser`.
        defaults: a recipe's or bank's ``eyes`` table (``landmarks``, ``parser``, ``label_order``),
            used where an argument is None.
    """
    defaults = defaults or {}
    return Eyes(landmarks=load_landmarks(landmarks if landmarks is not None else defaults.get("landmarks"),
                                         size=fan_size),
                parser=load_parser(parser if parser is not None else defaults.get("parser"),
                                   label_order=label_order or defaults.get("label_order", "bisenet"), size=parser_size))
