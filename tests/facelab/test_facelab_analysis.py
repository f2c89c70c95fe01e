"""FaceLab face-analysis nets: shapes, differentiability, metrics, shipped assets."""
from __future__ import annotations

import pytest
import torch

from iceaudit.facelab.analysis import (ASSETS, LandmarkNet, ParserNet, evaluate_on_generator,
                                       landmark_error, load_landmarker, load_parser, parsing_iou)
from iceaudit.facelab.render import LABEL_NAMES, NUM_LANDMARKS, render_seed


def test_nets_take_any_square_resolution_and_are_differentiable():
    torch.manual_seed(0)
    lm, parser = LandmarkNet(width=4, hidden=8).eval(), ParserNet(width=4).eval()
    x = (torch.rand(2, 3, 128, 128) * 2 - 1).requires_grad_()
    pts = lm(x)
    logits = parser(x)
    assert pts.shape == (2, NUM_LANDMARKS, 2) and logits.shape == (2, len(LABEL_NAMES), 128, 128)
    (pts.sum() + logits.logsumexp(1).sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # coordinates scale with the input resolution
    small = torch.nn.functional.avg_pool2d(x.detach(), 2)
    assert torch.allclose(lm(small) * 2, lm(x.detach()), atol=1e-3)


def test_metrics():
    r = render_seed(4, 0)
    assert landmark_error(r.landmarks, r.landmarks)["all"] == 0
    assert landmark_error(r.landmarks + torch.tensor([3.0, 4.0]), r.landmarks)["eyes"] == pytest.approx(5.0)
    iou = parsing_iou(r.labels, r.labels)
    assert iou["mIoU"] == 1.0
    wrong = torch.zeros_like(r.labels)
    assert parsing_iou(wrong, r.labels)["mIoU"] < 0.2


class _ExactGenerator(torch.nn.Module):
    """A stand-in generator that returns render(phi(z)) exactly (the ideal demo generator)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z, c=None, noise_mode="const"):
        from iceaudit.facelab.latent import render_z

        return render_z(z, 64).images


@pytest.mark.skipif(not (ASSETS / "parser.safetensors").exists() or not (ASSETS / "landmarks.safetensors").exists(),
                    reason="shipped nets not trained yet (iceaudit facelab train-parser / train-landmarks)")
def test_shipped_nets_load_and_read_faces():
    lm, parser = load_landmarker(), load_parser()
    r = render_seed(16, 3)
    err = landmark_error(lm(r.images).detach(), r.landmarks)["all"]
    mean_shape = landmark_error(r.landmarks.mean(0, keepdim=True).expand_as(r.landmarks), r.landmarks)["all"]
    assert err < 0.7 * mean_shape
    assert parsing_iou(parser.labels(r.images), r.labels)["mIoU"] > 0.5
    # on an exact generator the generator metric equals the render metric
    g = evaluate_on_generator(_ExactGenerator(), lm, parser, n=8, seed=5)
    from iceaudit.facelab.analysis import evaluate_on_renders
    from iceaudit.facelab.latent import render_z, sample_z

    truth = render_z(sample_z(8, 5), 64)
    direct = landmark_error(lm(truth.images).detach(), truth.landmarks)["all"]
    assert g["landmark_error_px"]["all"] == pytest.approx(direct, abs=1e-3)
    assert callable(evaluate_on_renders)


@pytest.mark.skipif(not (ASSETS / "parser.safetensors").exists() or not (ASSETS / "landmarks.safetensors").exists(),
                    reason="shipped nets not trained yet (iceaudit facelab train-parser / train-landmarks)")
def test_criteria_resolve_facelab_nets():
    from iceaudit.criteria.base import FaceParser, LandmarkModel
    from iceaudit.criteria.eyes import load_landmarks, load_parser as criteria_parser

    lm, parser = load_landmarks("facelab"), criteria_parser("facelab")
    assert isinstance(lm, LandmarkModel) and isinstance(parser, FaceParser)
    assert lm.num_points == 35 and set(lm.groups) == {"jaw", "brows", "nose", "eyes", "mouth"}
    r = render_seed(2, 0)
    pts = lm(r.images)
    assert pts.shape == (2, 35, 2) and 0 < float(pts.min()) and float(pts.max()) < 1
    assert list(parser.labels) == list(LABEL_NAMES) and parser(r.images).shape == (2, 9, 64, 64)
