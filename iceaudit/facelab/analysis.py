"""FaceLab's face-analysis nets: a landmark regressor and a face parser.

They stand in for face-alignment (FAN) and a BiSeNet parser on FaceLab
faces: small, differentiable, trained on renders with exact labels, shipped
under `assets/` as safetensors + JSON.

    lm = load_landmarker()           # images [N,3,R,R] in [-1,1] -> [N,35,2] (x, y) px of R
    parser = load_parser()           # images [N,3,R,R] in [-1,1] -> logits [N,9,R,R]

Both accept any square input resolution (resized to 64 inside, differentiably)
and return results at the input's resolution. Landmark order is
`render.LANDMARK_NAMES`, label order `render.LABEL_NAMES`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from iceaudit.facelab.factors import sample_factors
from iceaudit.facelab.render import LABEL_NAMES, LANDMARK_GROUPS, NUM_LANDMARKS, render
from iceaudit.facelab.asset_files import ASSETS, load_asset

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


NET_RES = 64
EVAL_SEED = 7  # held-out renders: seeds below TRAIN_SEED_BASE are never trained on


def _to_net_res(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"expected images [N, 3, R, R], got {list(images.shape)}")
    if images.shape[-1] == NET_RES:
        return images
    return F.interpolate(images, size=(NET_RES, NET_RES), mode="bilinear", align_corners=False,
                         antialias=images.shape[-1] > NET_RES)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))


class LandmarkNet(nn.Module):
    """CNN encoder -> 35 (x, y) offsets from the mean FaceLab landmarks, at 64 px."""

    def __init__(self, width: int = 16, hidden: int = 128):
        super().__init__()
        w = width
        self.width, self.hidden = width, hidden
        self.features = nn.Sequential(
            _conv(3, w), _conv(w, w, 2),  # 32
            _conv(w, 2 * w), _conv(2 * w, 2 * w, 2),  # 16
            _conv(2 * w, 4 * w, 2),  # 8
            _conv(4 * w, 2 * w, 2),  # 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, hidden), nn.LeakyReLU(0.1),
                                  nn.Linear(hidden, NUM_LANDMARKS * 2))
        self.register_buffer("mean", torch.zeros(NUM_LANDMARKS, 2))

    def config(self) -> dict:
        return {"width": self.width, "hidden": self.hidden}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        res = images.shape[-1]
        x = _to_net_res(images)
        out = self.head(self.features(x)).view(-1, NUM_LANDMARKS, 2)
        return (self.mean + 4.0 * out) * (res / NET_RES)


class ParserNet(nn.Module):
    """A small U-Net: logits over `LABEL_NAMES` per pixel."""

    def __init__(self, width: int = 12):
        super().__init__()
        w = width
        self.width = width
        self.enc1 = nn.Sequential(_conv(3, w), _conv(w, w))  # 64
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # 32
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # 16
        self.mid = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # 8
        self.dec3 = nn.Sequential(_conv(8 * w, 4 * w), _conv(4 * w, 4 * w))
        self.dec2 = nn.Sequential(_conv(6 * w, 2 * w), _conv(2 * w, 2 * w))
        self.dec1 = nn.Sequential(_conv(3 * w, w), _conv(w, w))
        self.out = nn.Conv2d(w, len(LABEL_NAMES), 1)

    def config(self) -> dict:
        return {"width": self.width}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        res = images.shape[-1]
        x = _to_net_res(images)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        m = self.mid(e3)
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        d3 = self.dec3(torch.cat([up(m), e3], 1))
        d2 = self.dec2(torch.cat([up(d3), e2], 1))
        d1 = self.dec1(torch.cat([up(d2), e1], 1))
        logits = self.out(d1)
        if res != NET_RES:
            logits = F.interpolate(logits, size=(res, res), mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def labels(self, images: torch.Tensor) -> torch.Tensor:
        """Hard labels uint8 [N, R, R]."""
        return self(images).argmax(1).to(torch.uint8)


# --- metrics ----------------------------------------------------------------------------


def landmark_error(pred: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Mean Euclidean error in px, overall and per landmark group."""
    d = (pred - true).norm(dim=-1)
    out = {"all": float(d.mean())}
    for g, idx in LANDMARK_GROUPS.items():
        out[g] = float(d[:, list(idx)].mean())
    return out


def parsing_iou(pred: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """IoU per label over the whole set, and their mean (`mIoU`) over labels present."""
    out, ious = {}, []
    for i, name in enumerate(LABEL_NAMES):
        p, t = pred == i, true == i
        union = int((p | t).sum())
        if union == 0:
            continue
        iou = int((p & t).sum()) / union
        out[name] = round(iou, 4)
        ious.append(iou)
    out["mIoU"] = round(sum(ious) / len(ious), 4)
    return out


@torch.no_grad()
def evaluate_on_renders(landmarker: LandmarkNet | None = None, parser: ParserNet | None = None,
                        n: int = 512, seed: int = EVAL_SEED, resolution: int = NET_RES) -> dict:
    """Accuracy on held-out renders (seeds below the training range)."""
    r = render(sample_factors(n, seed), resolution)
    return _evaluate(r.images, r, landmarker, parser)


@torch.no_grad()
def evaluate_on_generator(generator: Generator, landmarker: LandmarkNet | None = None, parser: ParserNet | None = None,
                          n: int = 256, seed: int = EVAL_SEED, batch: int = 32) -> dict:
    """Accuracy on demo-generator samples G(z), against render(phi(z)) as the truth.

    `generator` follows the engine contract (``G(z, noise_mode='const')`` -> [-1, 1]ish
    images); outputs are clamped to [-1, 1] and compared at 64x64.
    """
    from iceaudit.facelab.latent import phi, sample_z

    z = sample_z(n, seed)
    dev = next(generator.parameters()).device
    imgs = []
    for i in range(0, n, batch):
        out = generator(z[i:i + batch].to(dev), None, noise_mode="const")
        imgs.append(_to_net_res(out.float().clamp(-1, 1)).cpu())
    truth = render(phi(z), NET_RES)
    return _evaluate(torch.cat(imgs), truth, landmarker, parser)


def _evaluate(images, truth, landmarker, parser) -> dict:
    out: dict = {"n": int(images.shape[0]), "resolution": int(images.shape[-1])}
    if landmarker is not None:
        pred = torch.cat([landmarker(images[i:i + 128]) for i in range(0, len(images), 128)])
        out["landmark_error_px"] = {k: round(v, 3) for k, v in landmark_error(pred, truth.landmarks).items()}
    if parser is not None:
        pred = torch.cat([parser.labels(images[i:i + 128]) for i in range(0, len(images), 128)])
        out["parsing_iou"] = parsing_iou(pred, truth.labels)
    return out


# --- training and loading ---------------------------------------------------------------


def load_landmarker(directory: Path = ASSETS) -> LandmarkNet:
    """The shipped landmark regressor (eval mode, CPU)."""
    weights, meta = load_asset("landmarks", directory)
    model = LandmarkNet(**meta["config"])
    model.load_state_dict(weights)
    return model.eval()


def load_parser(directory: Path = ASSETS) -> ParserNet:
    """The shipped face parser (eval mode, CPU)."""
    weights, meta = load_asset("parser", directory)
    model = ParserNet(**meta["config"])
    model.load_state_dict(weights)
    return model.eval()
