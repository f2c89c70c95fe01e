"""Differentiable 68-point landmarks from face-alignment's FAN network.

face-alignment's public API crops with OpenCV and takes an argmax under
no_grad, which ICE cannot differentiate. Here the aligned generator image is
cropped with ``grid_sample`` (a fixed box, in image fractions), FAN runs on the
crop, and each of the 68 heatmaps becomes a point by soft-argmax: the ReLU'd
heatmap normalised to sum 1, then the expected column and row.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from iceaudit.errors import UserError, brief

FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/" + FAN_FILE


def default_fan_path() -> Path:
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(home) / "hub" / "checkpoints" / FAN_FILE


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """[N, K, H, W] heatmaps -> [N, K, 2] (x, y) in [0, 1] heatmap coordinates (pixel centres)."""
    n, k, h, w = heatmaps.shape
    p = heatmaps.clamp_min(0).flatten(2)
    p = (p + 1e-12) / (p.sum(-1, keepdim=True) + 1e-12 * h * w)
    p = p.reshape(n, k, h, w)
    xs = (torch.arange(w, dtype=p.dtype, device=p.device) + 0.5) / w
    ys = (torch.arange(h, dtype=p.dtype, device=p.device) + 0.5) / h
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1)


class FanLandmarks(nn.Module):
    """images [N,3,R,R] in [-1,1] -> landmarks [N,68,2] in [0,1] image coordinates.

    ``box`` = (centre x, centre y, side) of the square crop as fractions of the image;
    the default is a guess for FFHQ-aligned faces (not verified against real FAN output).
    """

    num_points = 68
    # iBUG 300-W 68-point layout (0-based)
    groups = {
        "jaw": list(range(0, 17)), "brows": list(range(17, 27)), "nose": list(range(27, 36)),
        "eyes": list(range(36, 48)), "left_eye": list(range(36, 42)), "right_eye": list(range(42, 48)),
        "mouth": list(range(48, 68)), "outer_lips": list(range(48, 60)), "inner_lips": list(range(60, 68)),
    }

    def __init__(self, net: nn.Module, *, box: tuple[float, float, float] = (0.5, 0.55, 0.75), size: int = 256) -> None:
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.box, self.size = tuple(float(b) for b in box), int(size)

    @classmethod
    def random(cls, num_modules: int = 4, seed: int = 0, **kw) -> "FanLandmarks":
        from face_alignment.models import FAN

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return cls(FAN(num_modules), **kw)

    @classmethod
    def from_file(cls, path: str | Path | None = None, **kw) -> "FanLandmarks":
        from face_alignment.models import FAN

        path = Path(path) if path else default_fan_path()
        if not path.is_file():
            raise UserError(
                f"face-alignment weights not found: {path}",
                hint=f"Download {FAN_FILE} (face-alignment 1.5 fetches it from {FAN_URL}) on a machine "
                f"with internet and put it at {default_fan_path()} (or pass its path with --landmarks).",
            )
        state = _load_state(path)
        net = FAN(4)
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise UserError(f"{path}: not 2DFAN-4 weights ({brief(err)})") from None
        return cls(net, **kw)

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        cx, cy, side = self.box
        n = images.shape[0]
        theta = images.new_tensor([[side, 0.0, 2 * cx - 1], [0.0, side, 2 * cy - 1]]).expand(n, 2, 3)
        grid = F.affine_grid(theta, [n, 3, self.size, self.size], align_corners=False)
        return F.grid_sample((images + 1) / 2, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        heat = self.net(self.crop(images))[-1]
        uv = soft_argmax(heat)  # crop coordinates in [0, 1]
        cx, cy, side = self.box
        x = cx + side * (uv[..., 0] - 0.5)
        y = cy + side * (uv[..., 1] - 0.5)
        return torch.stack([x, y], dim=-1)


def _load_state(path: Path) -> dict:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable / unsafe file is the user's to fix
        raise UserError(f"{path}: cannot be read as a weights-only PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
