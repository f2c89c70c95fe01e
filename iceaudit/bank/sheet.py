"""Contact sheet: one row of walk frames per subspace, labelled, as a PNG."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from iceaudit.bank.edit import walk_images
from iceaudit.bank.format import Bank

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def contact_sheet(G: Generator, bank: Bank, ws: torch.Tensor, path: str | Path, *, steps: int = 7, cell: int = 96,
                  ids: Sequence[str] | None = None, progress: Callable[[float], None] | None = None) -> Path:
    """Walk face(s) ``ws`` [F, num_ws, w_dim] along each subspace over its step range; write a PNG."""
    from PIL import Image, ImageDraw

    from iceaudit.atomic import atomic_path

    subs = [s for s in bank.subspaces if ids is None or s.id in ids]
    label_w, pad = 190, 2
    n_faces = ws.shape[0]
    width = label_w + n_faces * steps * (cell + pad) + (n_faces - 1) * 8
    height = 22 + len(subs) * (cell + pad)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), f"bank {bank.name}: walks over each step range (left = low, right = high; "
                      "red frame: past the valid range, where audits do not walk)", fill="black")
    for row, sub in enumerate(subs):
        lo, hi = sub.step_range
        alphas = torch.linspace(lo, hi, steps).tolist()
        with torch.no_grad():
            frames = walk_images(G, sub, ws, alphas)  # [F, steps, 3, R, R]
        y = 22 + row * (cell + pad)
        text = f"{sub.id}\n{lo:+g} .. {hi:+g} units"
        w_lo, w_hi = sub.walk_range
        if (w_lo, w_hi) != (lo, hi):
            text += f"\nvalid {w_lo:+g} .. {w_hi:+g}"
        if "protected" in sub.tags:
            text += "\n[protected]"
        if not sub.verified:
            text += "\n(unverified)"
        draw.text((4, y + 4), text, fill="black")
        for f in range(n_faces):
            imgs = _to_uint8(frames[f])
            for k in range(steps):
                x = label_w + f * (steps * (cell + pad) + 8) + k * (cell + pad)
                sheet.paste(Image.fromarray(imgs[k]).resize((cell, cell), Image.NEAREST), (x, y))
                if not w_lo - 1e-6 <= alphas[k] <= w_hi + 1e-6:
                    draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=(220, 0, 0), width=2)
        if progress:
            progress(1)
    path = Path(path)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
