"""The audit's pictures: walk strips and counterfactual pairs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from iceaudit.atomic import atomic_path
from iceaudit.audit.stages import AuditInputs, Measured
from iceaudit.audit.stats import zero_index
from iceaudit.audit.units import on_device, safe_id
from iceaudit.audit.walks import Walker
from iceaudit.record import BestEdit, WalkStrip


def _to_pil(img: torch.Tensor):
    from PIL import Image

    arr = ((img.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def _hstack(images):
    from PIL import Image

    w, h = images[0].size
    strip = Image.new("RGB", (w * len(images), h))
    for k, im in enumerate(images):
        strip.paste(im, (k * w, 0))
    return strip


def save_png(im, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


def _strip_alphas(alphas: np.ndarray, k: int = 5) -> np.ndarray:
    idx = set(np.linspace(0, len(alphas) - 1, min(k, len(alphas))).round().astype(int).tolist())
    idx.add(zero_index(alphas))
    return alphas[sorted(idx)]


@dataclass
class AuditImages:
    """What `write_images` wrote: the walk strips per subspace and the best counterfactual per shown face."""

    walk_strips: dict[str, list[WalkStrip]] = field(default_factory=dict)
    best: list[BestEdit] = field(default_factory=list)


def write_images(out: Path, inputs: AuditInputs, measured: Measured) -> AuditImages:
    """Walk strips of the top drivers (and every protected subspace) and the best counterfactual
    of the first faces, as PNGs under ``out/images``.

    Args:
        out: the audit directory.
        inputs: the audit's checked inputs.
        measured: its walks and statistics.
    """
    G, faces, settings, batch = inputs.G, inputs.faces, inputs.settings, inputs.batch
    score_fn = inputs.classifier.decision_score
    subspaces, grids, drivers = inputs.subspaces, inputs.grids, measured.drivers
    results, counterfactuals, per_face = measured.results, measured.counterfactuals, measured.per_face
    by_id = {s.id: s for s in subspaces}
    device = faces.ws.device
    strips: dict[str, list[WalkStrip]] = {}
    shown = [d.subspace for d in drivers[: settings.output.strip_subspaces]]
    shown += [s.id for s in subspaces if "protected" in s.tags and s.id not in shown]
    samples = np.arange(min(settings.output.strip_faces, len(faces)))
    for sid in shown:
        alphas = _strip_alphas(grids[sid])
        walker = Walker(G, faces, on_device(by_id[sid], device), score_fn, batch_images=batch, partial=settings.run.partial)
        imgs = walker.images(np.repeat(samples, len(alphas)), np.tile(alphas, len(samples)))
        entries = []
        for j, s in enumerate(samples):
            rel = f"images/walks/{safe_id(sid)}/sample_{s:04d}.png"
            save_png(_hstack([_to_pil(im) for im in imgs[j * len(alphas):(j + 1) * len(alphas)]]), out / rel)
            sc = results[(results["subspace"] == sid) & (results["sample"] == s)].set_index("alpha")["score"]
            entries.append(WalkStrip(sample=int(s), image=rel, alphas=[float(a) for a in alphas],
                                     scores=[float(sc.get(a, np.nan)) for a in alphas]))
        strips[sid] = entries
    best = []
    shown_faces = per_face[per_face["best_subspace"].notna()].head(settings.output.n_counterfactual_images)
    for row in shown_faces.itertuples():
        sid, step = row.best_subspace, float(row.best_step)
        walker = Walker(G, faces, on_device(by_id[sid], device), score_fn, batch_images=batch, partial=settings.run.partial)
        orig, cf = walker.images(np.array([row.sample, row.sample]), np.array([0.0, step]))
        stem = f"images/counterfactuals/sample_{row.sample:04d}"
        o, c = _to_pil(orig), _to_pil(cf)
        diff = (cf - orig).abs().mean(0)
        diff = (diff / diff.max().clamp_min(1e-8) * 2 - 1).expand(3, -1, -1)
        paths = {"original": f"{stem}_original.png", "counterfactual": f"{stem}_{safe_id(sid)}.png",
                 "diff": f"{stem}_diff.png", "pair": f"{stem}_pair.png"}
        save_png(o, out / paths["original"])
        save_png(c, out / paths["counterfactual"])
        save_png(_to_pil(diff), out / paths["diff"])
        save_png(_hstack([o, c]), out / paths["pair"])
        rec = counterfactuals[(counterfactuals["sample"] == row.sample) & (counterfactuals["subspace"] == sid)].iloc[0]
        best.append(BestEdit(sample=int(row.sample), seed=int(row.seed), subspace=sid, step=step,
                             score_before=float(rec["score_before"]), score_after=float(rec["score_after"]), **paths))
    return AuditImages(walk_strips=strips, best=best)


# -- summary ---------------------------------------------------------------------------------------
