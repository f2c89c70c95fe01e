"""Contact sheets of FaceLab renders (faces, or part labels with landmarks)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from iceaudit.facelab.render import Render, to_uint8

PALETTE = np.array([
    [20, 20, 20], [232, 190, 160], [110, 60, 25], [220, 30, 30], [40, 200, 60],
    [40, 80, 230], [230, 40, 200], [30, 220, 230], [240, 220, 40],
], dtype=np.uint8)  # one colour per LABEL_NAMES entry


def grid(tiles: np.ndarray, cols: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one [rows*H, cols*W, 3] image (blank tiles pad the last row)."""
    n, h, w, c = tiles.shape
    rows = -(-n // cols)
    out = np.full((rows * h, cols * w, c), 255, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        out[r * h:(r + 1) * h, k * w:(k + 1) * w] = tiles[i]
    return out


def label_tiles(r: Render, landmarks: bool = True) -> np.ndarray:
    """Part labels coloured with `PALETTE`, landmarks as white dots."""
    tiles = PALETTE[r.labels.numpy()]
    if landmarks:
        res = r.resolution
        for i in range(len(r)):
            for x, y in r.landmarks[i].numpy():
                xi, yi = int(x), int(y)
                if 0 <= xi < res and 0 <= yi < res:
                    tiles[i, yi, xi] = 255
    return tiles


def save_sheet(r: Render, path: str | Path, cols: int = 8, labels: bool = False) -> Path:
    """Save faces (and, with `labels`, a row-interleaved label sheet below them) as PNG."""
    faces = to_uint8(r.images).numpy()
    img = grid(faces, cols)
    if labels:
        img = np.concatenate([img, grid(label_tiles(r), cols)], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def factor_sweep(name: str, steps: int = 7, seed: int = 0, faces: int = 3, resolution: int = 128) -> Render:
    """`faces` random faces (rows), each with factor `name` swept over its range (columns)."""
    from iceaudit.facelab import factors as fl
    from iceaudit.facelab.render import render

    f = fl.factor(name)
    base = fl.sample_factors(faces, seed).repeat_interleave(steps, 0)
    base[:, fl.FACTOR_INDEX[name]] = torch.linspace(f.low, f.high, steps).repeat(faces)
    return render(base, resolution)
