"""Seeds -> faces -> a PNG grid, with the official conventions.

- A seed's z is `np.random.RandomState(seed).randn(1, z_dim)` (float64 drawn,
  then float32), as stylegan2-ada-pytorch's generate.py draws it.
- Images are converted as the official code saves them:
  `(img * 127.5 + 128).clamp(0, 255).to(uint8)`.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from iceaudit.atomic import atomic_path
from iceaudit.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from iceaudit.stylegan2.networks import Generator

MAX_SEED = 2 ** 32 - 1  # RandomState's seed range
MAX_SEEDS = 10_000


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]. Ranges are inclusive; order is kept."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise UserError(f"bad seeds {text!r}: {part!r} is not a seed or range",
                            hint="Write seeds like 0-15 or 0-3,7,42 (non-negative integers, inclusive ranges).")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"bad seeds {text!r}: range {part} runs backwards")
        if hi > MAX_SEED:
            raise UserError(f"bad seeds {text!r}: seeds must be at most {MAX_SEED}")
        if len(seeds) + (hi - lo + 1) > MAX_SEEDS:
            raise UserError(f"bad seeds {text!r}: more than {MAX_SEEDS} seeds")
        seeds.extend(range(lo, hi + 1))
    return seeds


def z_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] float32, one official seed -> z draw per row."""
    return torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds])).float()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] raw generator output -> [N, H, W, C] uint8."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()


@torch.no_grad()
def generate_images(G: Generator, seeds: Sequence[int], psi: float = 1.0, noise_mode: str = "const",
                    batch_size: int = 8, class_idx: int | None = None,
                    on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """uint8 images [N, H, W, C] for `seeds`, generated in batches.
    Conditional generators need `class_idx` (a one-hot label, as officially)."""
    device = next(G.parameters()).device
    z = z_from_seeds(seeds, G.z_dim)
    c = None
    if G.c_dim:
        if class_idx is None:
            raise UserError(f"this generator is conditional ({G.c_dim} classes): pass --class-idx")
        if not 0 <= class_idx < G.c_dim:
            raise UserError(f"--class-idx must be in 0..{G.c_dim - 1}, got {class_idx}")
        c = torch.zeros(1, G.c_dim, device=device)
        c[0, class_idx] = 1
    elif class_idx is not None:
        raise UserError("--class-idx given, but this generator is unconditional")
    out = []
    for start in range(0, len(seeds), batch_size):
        batch = z[start:start + batch_size].to(device)
        labels = None if c is None else c.expand(len(batch), -1)
        out.append(to_uint8(G(batch, labels, psi=psi, noise_mode=noise_mode)))
        if on_batch is not None:
            on_batch(len(batch))
    return torch.cat(out)


def image_grid(images: torch.Tensor, cols: int | None = None):
    """A PIL image tiling uint8 [N, H, W, C] row-major (`cols` default: square-ish)."""
    from PIL import Image

    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, img in enumerate(images.numpy()):
        r, q = divmod(i, cols)
        canvas[r * h:(r + 1) * h, q * w:(q + 1) * w] = img
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def save_png(image, path: str | Path) -> Path:
    """Write a PIL image as PNG atomically (temp file + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
