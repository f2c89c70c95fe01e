"""Baselines beside the walks: Captum pixel methods by face region, latent
attribution, AttFind's unnamed drivers, and how they agree with the walks.

The audit calls one function on the faces it already sampled::

    from iceaudit.audit.baselines import parse_methods, run_baselines
    methods = parse_methods(cli_value)          # "--baselines" value
    record.baselines = run_baselines(
        score_fn, G, faces, bank, parser, methods, audit_dir,
        drivers=record.drivers, threshold=card_threshold)

The result is the record's typed `iceaudit.record.Baselines` (each method builds its
JSON-shaped part; `_typed` reads them into the types once); heatmaps and walk strips are
written to ``audit_dir/figures/``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from iceaudit.audit.pixel_attribution import (
    PIXEL_METHODS,
    MethodSkipped,
    attribute_pixels,
    classifier_parts,
    quality_metrics,
    rank_regions,
)
from iceaudit.atomic import atomic_path, write_text
from iceaudit.errors import UserError
from iceaudit.validation import read_record
from iceaudit.progress import Advance, StageProgress, no_progress
from iceaudit.record import Baselines, Driver
from iceaudit.record.codec import from_json

if TYPE_CHECKING:  # annotations only
    from iceaudit.audit.sample import Faces
    from iceaudit.bank.format import Bank
    from iceaudit.stylegan2.networks import Generator


LATENT_METHODS = ("latent", "attfind", "tcav")
ALL_METHODS = PIXEL_METHODS + LATENT_METHODS
# The default set (BENCHMARKS.md ## Baselines): the methods that need at most
# n_steps classifier passes per face, plus latent IG and AttFind with gradient
# screening. Occlusion (225 passes per face at 64 px), SmoothGrad and IG from
# the mean image are opt-in.
DEFAULT_METHODS = ("saliency", "input_x_gradient", "ig_blur", "feature_ablation", "gradcam", "latent", "attfind", "tcav")
SCHEMA = 1
BASELINES_HELP = (
    "Baselines beside the walks: `none`, `default`, `all`, or a comma-separated list of "
    + ", ".join(ALL_METHODS)
    + ". Default: " + ",".join(DEFAULT_METHODS) + " (occlusion, smoothgrad and ig_mean cost more; see BENCHMARKS.md)."
)


@dataclass
class BaselineOptions:
    """Knobs of `run_baselines` (defaults chosen from the benchmark)."""

    n_steps: int = 16  # IntegratedGradients steps (pixel)
    internal_batch_size: int = 64  # IG rows per forward pass
    nt_samples: int = 8  # SmoothGrad samples
    stdevs: float = 0.2  # SmoothGrad noise SD (images in [-1, 1])
    occlusion_window: int | None = None  # default R / 8
    occlusion_stride: int | None = None  # default window / 2
    perturbations_per_eval: int = 16
    batch_faces: int = 16  # faces per Captum call
    max_faces: int | None = None  # pixel baselines on the first max_faces faces only
    quality: bool = True  # Captum infidelity / sensitivity_max
    quality_faces: int = 8
    latent_n_steps: int = 16  # completeness gap 0.08 at 16 steps vs 0.18 at 8 (BENCHMARKS.md)
    latent_max_faces: int | None = 32  # latent IG on the first faces only (None: all)
    attfind_k: int = 5
    attfind_screen: int | None = 64  # channels evaluated exactly after gradient screening (None: all)
    attfind_max_faces: int | None = 32  # AttFind on the first faces only (None: all)
    attfind_batch: int = 128
    tcav_layer: str | None = None  # a module name of the classifier (default: its last Conv2d)
    tcav_random: int = 10  # random sets per concept (and 2x as many random-vs-random controls)
    tcav_max_faces: int | None = 32  # TCAV inputs and concept examples: the first faces only (None: all)


def parse_methods(value: str | Sequence[str] | None) -> list[str]:
    """``--baselines`` value -> method names. Accepts ``none``, ``default``,
    ``all``, or names separated by commas (``saliency,feature_ablation``)."""
    if value is None:
        return list(DEFAULT_METHODS)
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip().lower().replace("-", "_") for i in items if i.strip()]
    if items in (["none"], []):
        return []
    out: list[str] = []
    for item in items:
        expand = {"default": DEFAULT_METHODS, "all": ALL_METHODS}.get(item, (item,))
        for name in expand:
            if name not in ALL_METHODS:
                raise UserError(
                    f"unknown baseline {item!r} in --baselines",
                    hint=f"use `none`, `default`, `all` or a comma-separated list of: {', '.join(ALL_METHODS)}",
                )
            if name not in out:
                out.append(name)
    return out


def parser_labels(parser: Any) -> list[str]:
    labels = getattr(parser, "labels", None) or getattr(parser, "label_names", None)
    if labels is None:
        raise UserError("the face parser does not say its label names (expected a `labels` attribute)")
    return list(labels)


@torch.no_grad()
def render_faces(G: Generator, ws: torch.Tensor, batch: int = 32) -> torch.Tensor:
    return torch.cat([G.synthesis(ws[i : i + batch]).clamp(-1, 1) for i in range(0, ws.shape[0], batch)])


@torch.no_grad()
def parse_faces(parser: Any, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Label maps [N, R, R] (long) at the images' resolution (nearest resize if the parser's differs)."""
    maps = torch.cat([torch.as_tensor(parser(images[i : i + batch])) for i in range(0, images.shape[0], batch)]).long()
    if maps.ndim != 3 or maps.shape[0] != images.shape[0]:
        raise UserError(f"the face parser returned shape {tuple(maps.shape)}; expected label maps [N, H, W]")
    r = images.shape[-1]
    if maps.shape[-2:] != (r, r):
        maps = torch.nn.functional.interpolate(maps[:, None].float(), size=(r, r), mode="nearest")[:, 0].long()
    return maps


def save_heatmap(heat: torch.Tensor, face: torch.Tensor, path: Path, title: str) -> None:
    """Mean attribution map over the mean face (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2.4, 2.6), dpi=100)
    ax.imshow(((face.permute(1, 2, 0) + 1) / 2).clamp(0, 1).cpu().numpy())
    ax.imshow(heat.cpu().numpy(), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


class BaselineCheckpoint:
    """The finished methods of one audit's baselines, so that an audit killed
    during the baselines resumes where it stopped (``checkpoint/baselines/``).

    Each method leaves ``<method>.json`` (its summary entry and the key it was
    computed under) and, for pixel methods, ``<method>.npy`` (its mean map),
    written after its figures, so a file here means the method is complete.
    The audit's run key already pins the classifier, generator, bank and faces;
    the key here adds what only the baselines depend on.
    """

    def __init__(self, folder: Path | None, key: dict[str, Any]) -> None:
        self.folder = folder
        self.key = json.loads(json.dumps(key, default=str))

    def load(self, method: str) -> tuple[dict[str, Any], Any] | None:
        """(entry, mean map or None) of a finished `method`, or None."""
        if self.folder is None or not (self.folder / f"{method}.json").is_file():
            return None
        try:
            saved = read_record(self.folder / f"{method}.json", "checkpoint", "json")
            heat = np.load(self.folder / f"{method}.npy") if (self.folder / f"{method}.npy").is_file() else None
        except (UserError, OSError, ValueError):
            return None  # unreadable: computed again
        if not isinstance(saved, dict) or saved.get("key") != {**self.key, "method": method} or "entry" not in saved:
            return None
        return saved["entry"], heat

    def save(self, method: str, entry: dict[str, Any], heat: Any = None) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if heat is not None:
            with atomic_path(self.folder / f"{method}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.asarray(heat))
        write_text(self.folder / f"{method}.json",
                   json.dumps({"key": {**self.key, "method": method}, "entry": entry}, default=float) + "\n")


@dataclass
class PixelRun:
    """What one pixel method leaves after streaming over the faces."""

    seconds: float
    mean_mass: torch.Tensor  # [R, R] mean over faces of |sum over RGB| (not normalised)
    regions: Any  # RegionTable or None (no parser)
    first: torch.Tensor  # attributions of the first `keep` faces (for the quality metrics)


def _pixel_method(score_fn, images, label_map, labels, method, opts: BaselineOptions, keep: int = 8,
                  advance: Advance = lambda k=1: None) -> PixelRun:
    """Run ``method`` batch by batch; keep only per-face region tables, the summed
    mass map and the first ``keep`` attributions (memory stays flat in N and R)."""
    from iceaudit.audit.pixel_attribution import RegionTable, pixel_mass

    kwargs = dict(
        n_steps=opts.n_steps, internal_batch_size=opts.internal_batch_size, nt_samples=opts.nt_samples,
        stdevs=opts.stdevs, window=opts.occlusion_window, stride=opts.occlusion_stride,
        perturbations_per_eval=opts.perturbations_per_eval,
    )
    t0 = time.perf_counter()
    mass_sum, tables, first = None, [], []
    for i in range(0, images.shape[0], opts.batch_faces):
        sl = slice(i, i + opts.batch_faces)
        lm = label_map[sl] if label_map is not None else None
        attr = attribute_pixels(score_fn, images[sl], method, label_map=lm, reference=images, **kwargs)
        m = pixel_mass(attr).sum(0)
        mass_sum = m if mass_sum is None else mass_sum + m
        if lm is not None:
            tables.append(RegionTable.of(attr, lm, len(labels)))
        if sum(len(a) for a in first) < keep:
            first.append(attr[: keep - sum(len(a) for a in first)])
        advance(attr.shape[0])
    return PixelRun(
        seconds=time.perf_counter() - t0,
        mean_mass=mass_sum / images.shape[0],
        regions=RegionTable.cat(tables) if tables else None,
        first=torch.cat(first),
    )


def run_baselines(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    generator: Generator,
    faces: Faces | torch.Tensor,
    bank: Bank | None,
    parser: Any,
    methods: Sequence[str] | None,
    out_dir: str | Path | None,
    *,
    drivers: Sequence[Driver] | None = None,
    threshold: float = 0.0,
    options: BaselineOptions | None = None,
    progress: StageProgress | None = None,
    checkpoint: str | Path | None = None,
) -> Baselines:
    """Run the chosen baselines on the audit's sampled faces.

    Args:
        score_fn: images in [-1, 1] -> decision scores.
        generator: the audited generator.
        faces: the audit's `Faces`, or their ws ``[N, num_ws, w_dim]``.
        bank: the audited bank (None: no latent attribution or AttFind matching).
        parser: maps images to label maps [N, R, R] and has ``labels`` (None: no region
            results, feature_ablation skipped).
        methods: method ids (`parse_methods`).
        out_dir: figures go to ``out_dir/figures``.
        drivers: the walks' records, for the agreement.
        threshold: the decision threshold on the score.
        options: per-method settings.
        progress: one stage per method, counted in faces (AttFind: in channel x face edits).
        checkpoint: a folder where each finished method is kept, and read back instead of
            recomputed (an audit resumed after a kill).
    """
    opts = options or BaselineOptions()
    methods = parse_methods(methods) if methods is None or isinstance(methods, str) else list(methods)
    out_dir = Path(out_dir) if out_dir is not None else None
    G = generator
    ws = faces.ws if hasattr(faces, "ws") else faces
    differentiable = classifier_parts(score_fn)[1]
    result: dict[str, Any] = {"schema": SCHEMA, "methods": list(methods), "threshold": threshold, "options": asdict(opts)}
    if not methods:
        return _typed(result)
    stage = progress or no_progress

    pixel = [m for m in methods if m in PIXEL_METHODS]
    pix_ws = ws if opts.max_faces is None else ws[: opts.max_faces]
    images = render_faces(G, pix_ws)
    labels = parser_labels(parser) if parser is not None else None
    label_map = parse_faces(parser, images) if parser is not None else None
    n = images.shape[0]
    result.update({"n_faces": n, "resolution": int(images.shape[-1]), "labels": labels})
    done = BaselineCheckpoint(Path(checkpoint) if checkpoint is not None else None,
                              {"options": asdict(opts), "n_faces": n, "labels": labels, "threshold": threshold,
                               "differentiable": differentiable, "bank": bank is not None, "out": out_dir is not None})

    pixel_out: dict[str, Any] = {}
    regions_by_method: dict[str, dict] = {}
    maps: dict[str, Any] = {}
    mean_face = images.mean(0)
    for method in pixel:
        advance = stage(f"Captum {method}: faces", n)
        kept = done.load(method)
        if kept is not None:
            entry, heat = kept
            pixel_out[method] = entry
            if entry.get("regions") is not None:
                regions_by_method[method] = entry["regions"]
            if heat is not None:
                maps[method] = heat
            advance(n)
            continue
        if method == "feature_ablation" and label_map is None:
            pixel_out[method] = {"status": "skipped", "reason": "no face parser: feature_ablation needs part masks"}
            continue
        try:
            run = _pixel_method(score_fn, images, label_map, labels, method, opts, keep=opts.quality_faces,
                                advance=advance)
        except MethodSkipped as why:
            pixel_out[method] = {"status": "skipped", "reason": str(why)}
            continue
        entry: dict[str, Any] = {"status": "ok", "seconds": run.seconds, "seconds_per_face": run.seconds / n}
        if run.regions is not None:
            regs = run.regions.importance(labels) if method == "feature_ablation" else run.regions.shares(labels)
            entry["regions"] = regs
            entry["region_ranking"] = rank_regions(regs)
            regions_by_method[method] = regs
        heat = run.mean_mass / run.mean_mass.max().clamp_min(1e-12)
        maps[method] = heat.cpu().numpy()
        if out_dir is not None:
            rel = Path("figures") / f"baseline_{method}.png"
            save_heatmap(heat, mean_face, out_dir / rel, method)
            entry["map"] = rel.as_posix()
        if opts.quality:
            q = run.first.shape[0]
            entry["quality"] = quality_metrics(score_fn, images[:q], run.first, method, n_steps=opts.n_steps, nt_samples=opts.nt_samples)
        pixel_out[method] = entry
        done.save(method, entry, maps[method])
    if pixel:
        result["pixel"] = pixel_out
    if out_dir is not None and maps:
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / "figures" / "baseline_maps.npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: maps[k] for k in sorted(maps, key=pixel.index)})
        result["maps_npz"] = "figures/baseline_maps.npz"

    latent_scores = latent_slope = None
    if "latent" in methods and not differentiable:
        result["latent"] = {"status": "skipped", "reason": "latent attribution needs gradients; this classifier is not differentiable (ONNX)"}
    elif "latent" in methods and bank is not None and (kept := done.load("latent")) is not None:
        result["latent"] = lat = kept[0]
        stage("latent IG: faces", 1)(1)
        latent_scores = {k: v["abs_attribution"] for k, v in lat["subspaces"].items()}
        latent_slope = {k: v["abs_slope_estimate"] for k, v in lat["subspaces"].items()}
    elif "latent" in methods and bank is not None:
        from iceaudit.audit.latent_attribution import latent_attribution

        t0 = time.perf_counter()
        lat_ws = ws if opts.latent_max_faces is None else ws[: opts.latent_max_faces]
        # one IG run over all faces (their mean style is the baseline): counted when done
        advance = stage("latent IG: faces", lat_ws.shape[0])
        lat = latent_attribution(score_fn, G, lat_ws, bank, n_steps=opts.latent_n_steps, internal_batch_size=opts.internal_batch_size)
        advance(lat_ws.shape[0])
        lat["status"] = "ok"
        lat["seconds"] = time.perf_counter() - t0
        lat["seconds_per_face"] = lat["seconds"] / lat_ws.shape[0]
        result["latent"] = lat = json.loads(json.dumps(lat, default=float))  # as a resumed run reads it back
        done.save("latent", lat)
        latent_scores = {k: v["abs_attribution"] for k, v in lat["subspaces"].items()}
        latent_slope = {k: v["abs_slope_estimate"] for k, v in lat["subspaces"].items()}
    elif "latent" in methods:
        result["latent"] = {"status": "skipped", "reason": "no subspace bank"}

    if "attfind" in methods and (kept := done.load("attfind")) is not None:
        result["attfind"] = kept[0]
    elif "attfind" in methods:
        from iceaudit.audit.attfind import run_attfind

        att_ws = ws if opts.attfind_max_faces is None else ws[: opts.attfind_max_faces]
        att_labels = None
        if parser is not None:
            att_labels = parse_faces(parser, render_faces(G, att_ws))
        t0 = time.perf_counter()
        att = run_attfind(
            score_fn, G, att_ws, threshold=threshold, k=opts.attfind_k, bank=bank, label_map=att_labels, labels=labels,
            screen=opts.attfind_screen if differentiable else None, batch_size=opts.attfind_batch, out_dir=out_dir,
            progress=stage,
        )
        if not differentiable:
            att["note"] = "no gradient screening (the classifier is not differentiable): every channel evaluated"
        att["status"] = "ok"
        att["seconds"] = time.perf_counter() - t0
        att["seconds_per_face"] = att["seconds"] / att_ws.shape[0]
        result["attfind"] = att = json.loads(json.dumps(att, default=float))
        done.save("attfind", att)

    if "tcav" in methods and bank is None:
        result["tcav"] = {"status": "skipped", "reason": "no subspace bank: TCAV's concepts are its subspaces"}
    elif "tcav" in methods and (kept := done.load("tcav")) is not None:
        result["tcav"] = kept[0]
    elif "tcav" in methods:
        from iceaudit.audit.tcav import run_tcav

        t_ws = ws if opts.tcav_max_faces is None else ws[: opts.tcav_max_faces]
        seeds = getattr(faces, "seeds", None)
        tc = run_tcav(score_fn, G, t_ws, bank, seeds=None if seeds is None else list(seeds), layer=opts.tcav_layer,
                      n_random=opts.tcav_random, drivers=drivers,
                      progress=stage("TCAV: concepts", len(drivers) if drivers else len(bank.subspaces)))
        result["tcav"] = tc = json.loads(json.dumps(tc, default=float))
        if tc["status"] == "ok":
            done.save("tcav", tc)

    if bank is not None and (drivers or latent_scores or regions_by_method):
        from iceaudit.audit.agreement import compare, walk_scores

        walk = walk_scores(drivers) if drivers else None
        result["agreement"] = compare(bank, walk, latent_scores, regions_by_method, labels, latent_slope=latent_slope)
    return _typed(result)


def _typed(result: dict[str, Any]) -> Baselines:
    """The methods' JSON-shaped results as the record's `Baselines` (numpy scalars as floats)."""
    return from_json(Baselines, json.loads(json.dumps(result, default=float)), "baselines")
