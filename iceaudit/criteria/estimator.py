"""An attribute estimator as a criterion: age, for instance, which no parser region or
landmark set measures.

``{kind = "estimator", model = "facelab-age"}`` uses FaceLab's age estimator (also
``facelab-beard``); a path
loads a TorchScript module (``torch.jit.load``; no pickles) mapping images
``[N, 3, R, R]`` in [-1, 1] to one score per face (``[N]`` or ``[N, 1]``). y_act is that
score, y_sup is empty, so an estimator criterion is a target only: what the edit must
leave fixed comes from the recipe's suppressors.
"""
from __future__ import annotations

from pathlib import Path

import torch

from iceaudit.criteria.base import Criterion
from iceaudit.errors import UserError

FACELAB_ESTIMATORS = {"facelab-age": ("age_estimator", "age"), "facelab-beard": ("beard_estimator", "beard")}


class _FaceLabEstimator(torch.nn.Module):
    def __init__(self, asset: str) -> None:
        super().__init__()
        from iceaudit.facelab.reader import load_reader

        self.reader = load_reader(asset=asset).requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # the raw regression output (factor scaled to [0, 1]), differentiable
        return self.reader(images.clamp(-1, 1))[:, 0]


def load_estimator(model: str) -> torch.nn.Module:
    if model in FACELAB_ESTIMATORS:
        return _FaceLabEstimator(FACELAB_ESTIMATORS[model][0])
    path = Path(model)
    if not path.is_file():
        raise UserError(f"attribute estimator {model!r} not found",
                        hint="give a TorchScript file (images [N,3,R,R] in [-1,1] -> [N]) or one of: "
                             + ", ".join(FACELAB_ESTIMATORS))
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # noqa: BLE001 - any load failure is the user's file
        raise UserError(f"{path} is not a TorchScript module ({type(err).__name__})",
                        hint="export the estimator with torch.jit.script or torch.jit.trace and save it") from None
    return net.eval()


class AttributeEstimator(Criterion):
    """y_act = the estimator's score [N, 1]; y_sup is empty."""

    def __init__(self, model: str) -> None:
        self.model_name = model
        self.net = load_estimator(model)
        self.name = f"estimator[{model if model in FACELAB_ESTIMATORS else Path(model).name}]"

    def evaluate(self, images, ctx):
        score = self.net(images).reshape(images.shape[0], -1)
        if score.shape[1] != 1:
            raise UserError(f"attribute estimator {self.model_name!r} returned {score.shape[1]} values per face; "
                            "a criterion needs exactly one")
        return score, score[:, :0]
