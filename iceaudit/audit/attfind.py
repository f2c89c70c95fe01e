"""Classifier-specific drivers outside the bank: StylEx's AttFind, without retraining.

1. `style_effects`: for every sampled face and every conv style channel
   (toRGB excluded), set the channel toward its observed minimum and maximum
   over the sampled faces (``s + shift * (extreme - s)``) and record the change
   of the decision score -> effects ``[N, 2, C]`` (0: toward min, 1: toward max).
   Edits of one layer share one cached `synthesis_prefix`; each face's edits
   run as one batch through `synthesis_suffix`.
2. `greedy_select`: for a target class, over the faces of the other class,
   repeatedly pick the (channel, direction) with the largest mean effect
   toward the target over the faces not yet flipped (accumulated effect below
   the face's margin to the threshold), as in AttFind; up to ``k``.
3. `sufficiency`: apply the top-1..k edits *jointly* and re-score: the share of
   the other class's faces whose decision flips (measured, not the additive
   estimate).
4. `match_to_bank` / `localise_channels`: each selected channel is compared
   with every bank subspace (latent overlap in S and the cosine of the image
   changes they cause) and assigned a face region; channels that no subspace
   explains are the *unnamed drivers*.

Optional screening (``screen=M``): a first-order estimate (gradient x shift,
one backward pass) ranks the channels and only the top M are evaluated
exactly; the others get effect 0. Exhaustive when ``screen`` is None.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from iceaudit.atomic import atomic_path
from iceaudit.audit.localise import localise_channels
from iceaudit.audit.style_space import StyleChannel, conv_channels, subspace_in_s
from iceaudit.progress import StageProgress, no_progress

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


ScoreFn = Callable[[torch.Tensor], torch.Tensor]
TARGETS = ("positive", "negative")


@dataclass
class ChannelEffects:
    channels: list[StyleChannel]
    minimum: torch.Tensor  # [C]
    maximum: torch.Tensor  # [C]
    base: torch.Tensor  # [N] decision scores of the unedited faces
    effects: torch.Tensor  # [N, 2, C] score change toward min / max
    evaluated: torch.Tensor  # [C] bool (False: screened out, effect left 0)
    seconds: float
    renders: int  # images synthesised for the effects


def _score(score_fn: ScoreFn, images: torch.Tensor) -> torch.Tensor:
    return score_fn(images.clamp(-1, 1)).reshape(-1)


def _screen(score_fn: ScoreFn, G, styles: dict, channels: list[StyleChannel], lo, hi, shift: float, keep: int) -> torch.Tensor:
    svec = G.pack_styles(styles).detach().clone().requires_grad_(True)
    score = _score(score_fn, G.synthesis_from_styles(G.unpack_styles(svec))).sum()
    (grad,) = torch.autograd.grad(score, svec)
    idx = torch.tensor([c.index for c in channels])
    s = svec.detach()[:, idx]
    est = torch.stack([grad[:, idx] * shift * (lo - s), grad[:, idx] * shift * (hi - s)], 1)  # [N, 2, C]
    strength = est.mean(0).abs().amax(0)
    mask = torch.zeros(len(channels), dtype=torch.bool)
    mask[torch.argsort(strength, descending=True)[:keep]] = True
    return mask


@torch.no_grad()
def style_effects(
    score_fn: ScoreFn,
    G: Generator,
    ws: torch.Tensor,
    *,
    shift: float = 1.0,
    batch_size: int = 256,
    screen: int | None = None,
    only: Sequence[str] | None = None,
    partial: bool = True,
    progress: StageProgress | None = None,
) -> ChannelEffects:
    """Score change of every face when each conv style channel moves toward its min / max.

    ``only`` restricts the evaluation to those channels (``"b8.conv0:3"``) or
    whole layers (``"b8.conv0"``); the others get effect 0.
    ``partial=False`` re-runs the whole synthesis for every edit (for the
    speed-up measurement only; results are identical). ``progress`` is told
    the (channel, face) evaluations as they are done.
    """
    t0 = time.perf_counter()
    styles = G.styles(ws)
    n = ws.shape[0]
    channels = conv_channels(G)
    svec = G.pack_styles(styles)
    idx = torch.tensor([c.index for c in channels])
    lo, hi = svec[:, idx].min(0).values, svec[:, idx].max(0).values
    base = _score(score_fn, G.synthesis_from_styles(styles))
    if screen is not None and screen < len(channels):
        with torch.enable_grad():
            evaluated = _screen(score_fn, G, styles, channels, lo, hi, shift, screen)
    else:
        evaluated = torch.ones(len(channels), dtype=torch.bool)
    if only is not None:
        wanted = set(only)
        evaluated &= torch.tensor([c.name in wanted or c.layer in wanted for c in channels])
    effects = torch.zeros(n, 2, len(channels))
    renders = 0
    by_layer: dict[str, list[int]] = {}
    for k, ch in enumerate(channels):
        if evaluated[k]:
            by_layer.setdefault(ch.layer, []).append(k)
    face_block = max(1, min(n, batch_size // 2))
    advance = (progress or no_progress)("AttFind: channel x face edits", sum(map(len, by_layer.values())) * n)
    for layer, ks in by_layer.items():
        for f0 in range(0, n, face_block):
            f1 = min(n, f0 + face_block)
            nb = f1 - f0
            block = {name: v[f0:f1] for name, v in styles.items()}
            state = G.synthesis_prefix(block, start=layer) if partial else None
            chunk = max(1, batch_size // (2 * nb))
            for c0 in range(0, len(ks), chunk):
                kk = ks[c0 : c0 + chunk]
                reps = 2 * len(kk)
                edited = {name: v.repeat_interleave(reps, dim=0) for name, v in block.items()}
                s = edited[layer].clone().view(nb, len(kk), 2, -1)
                for j, k in enumerate(kk):
                    c = channels[k].channel
                    cur = s[:, j, :, c]
                    s[:, j, 0, c] = cur[:, 0] + shift * (lo[k] - cur[:, 0])
                    s[:, j, 1, c] = cur[:, 1] + shift * (hi[k] - cur[:, 1])
                edited[layer] = s.view(nb * reps, -1)
                if partial:
                    images = G.synthesis_suffix(state.repeat_interleave(reps), edited)
                else:
                    images = G.synthesis_from_styles(edited)
                renders += images.shape[0]
                scores = _score(score_fn, images).view(nb, len(kk), 2)
                advance(nb * len(kk))
                effects[f0:f1, :, kk] = (scores - base[f0:f1, None, None]).transpose(1, 2).float()
    return ChannelEffects(channels, lo, hi, base, effects, evaluated, time.perf_counter() - t0, renders)


def _toward(effects: torch.Tensor, target: str) -> torch.Tensor:
    return effects if target == "positive" else -effects


def other_class(base: torch.Tensor, threshold: float, target: str) -> torch.Tensor:
    """Faces whose decision is not ``target`` (these are the ones to flip)."""
    return base < threshold if target == "positive" else base >= threshold


def greedy_select(eff: ChannelEffects, threshold: float, target: str, k: int = 5) -> list[dict]:
    """AttFind's greedy top-k (channel, direction) for ``target`` ("positive"/"negative")."""
    faces = other_class(eff.base, threshold, target)
    if not faces.any():
        return []
    toward = _toward(eff.effects[faces], target)  # [M, 2, C]
    margin = (eff.base[faces] - threshold).abs() + 1e-6
    acc = torch.zeros(toward.shape[0])
    used = torch.zeros(toward.shape[2], dtype=torch.bool)
    picks: list[dict] = []
    for _ in range(k):
        active = acc < margin
        if not active.any():
            break
        mean = toward[active].mean(0)  # [2, C]
        mean[:, used] = -float("inf")
        best = int(torch.argmax(mean))
        d, c = divmod(best, toward.shape[2])
        if not mean[d, c] > 0:
            break
        used[c] = True
        acc = acc + toward[:, d, c]
        ch = eff.channels[c]
        picks.append({
            "channel": ch.name, "layer": ch.layer, "index": ch.channel, "position": c,
            "direction": "max" if d == 1 else "min", "mean_effect": float(mean[d, c]),
            "estimated_flip_share": float((acc >= margin).float().mean()),
        })
    return picks


@torch.no_grad()
def sufficiency(score_fn: ScoreFn, G: Generator, ws: torch.Tensor, eff: ChannelEffects, picks: Sequence[dict], threshold: float, target: str, shift: float = 1.0) -> list[float]:
    """Measured share of the other class's faces flipped by the top-1..k edits applied jointly."""
    faces = other_class(eff.base, threshold, target)
    if not faces.any() or not picks:
        return []
    styles = {name: v[faces].clone() for name, v in G.styles(ws).items()}
    curve = []
    for p in picks:
        c = p["position"]
        extreme = eff.maximum[c] if p["direction"] == "max" else eff.minimum[c]
        s = styles[p["layer"]]
        s[:, p["index"]] = s[:, p["index"]] + shift * (extreme - s[:, p["index"]])
        scores = _score(score_fn, G.synthesis_from_styles(styles))
        flipped = scores >= threshold if target == "positive" else scores < threshold
        curve.append(float(flipped.float().mean()))
    return curve


@torch.no_grad()
def match_to_bank(G: Generator, ws: torch.Tensor, eff: ChannelEffects, picks: Sequence[dict], bank, *, shift: float = 1.0) -> dict[str, list[dict]]:
    """For each picked channel, every subspace's latent overlap and image-change cosine.

    ``latent_overlap`` = |projection of the channel's unit vector onto the
    subspace's span in S| (1: the channel lies in the subspace; a dense W
    direction mapped to S overlaps any single channel only weakly).
    ``image_cosine`` = mean over faces of |cos| between the image change of
    the channel edit and of one walk to the end of the subspace's step range.
    """
    if bank is None or not picks:
        return {}
    styles = G.styles(ws)
    svec = G.pack_styles(styles)
    base_img = G.synthesis_from_styles(styles)
    sub_changes = {}
    for sub in bank.subspaces:
        basis_s, unit_s = subspace_in_s(G, sub)
        reach = max(abs(sub.step_range[0]), abs(sub.step_range[1])) or 1.0
        moved = G.synthesis_from_styles(G.unpack_styles(svec + reach * unit_s.to(svec)[None]))
        sub_changes[sub.id] = (basis_s, (moved - base_img).flatten(1))
    out: dict[str, list[dict]] = {}
    for p in picks:
        c = p["position"]
        ch = eff.channels[c]
        extreme = eff.maximum[c] if p["direction"] == "max" else eff.minimum[c]
        edited = dict(styles)
        s = styles[ch.layer].clone()
        s[:, ch.channel] = s[:, ch.channel] + shift * (extreme - s[:, ch.channel])
        edited[ch.layer] = s
        change = (G.synthesis_from_styles(edited) - base_img).flatten(1)
        rows = []
        for sid, (basis_s, sub_change) in sub_changes.items():
            overlap = float(basis_s[:, ch.index].norm())
            cos = torch.nn.functional.cosine_similarity(change, sub_change, dim=1, eps=1e-12).abs().mean()
            rows.append({"subspace": sid, "latent_overlap": overlap, "image_cosine": float(cos)})
        rows.sort(key=lambda r: -max(r["latent_overlap"], r["image_cosine"]))
        out[p["channel"]] = rows
    return out


def walk_strip(G: Generator, ws: torch.Tensor, ch: StyleChannel, lo: float, hi: float, path: Path, *, n_faces: int = 3, n_steps: int = 5) -> Path:
    """A PNG grid: faces (rows) with the channel swept from its min to its max (columns)."""
    import numpy as np
    from PIL import Image

    with torch.no_grad():
        ws = ws[:n_faces]
        styles = G.styles(ws)
        values = torch.linspace(float(lo), float(hi), n_steps)
        rep = {k: v.repeat_interleave(n_steps, dim=0) for k, v in styles.items()}
        s = rep[ch.layer].clone()
        s[:, ch.channel] = values.repeat(ws.shape[0]).to(s)
        rep[ch.layer] = s
        img = G.synthesis_from_styles(rep).clamp(-1, 1)
    r = img.shape[-1]
    grid = img.view(ws.shape[0], n_steps, 3, r, r).permute(0, 3, 1, 4, 2).reshape(ws.shape[0] * r, n_steps * r, 3)
    arr = ((grid + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    strip = Image.fromarray(np.ascontiguousarray(arr))
    scale = max(1, 64 // r)  # tiny generators: enlarge so the strip is readable
    if scale > 1:
        strip = strip.resize((strip.width * scale, strip.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        strip.save(tmp, format="PNG")
    return path


def run_attfind(
    score_fn: ScoreFn,
    G: Generator,
    ws: torch.Tensor,
    *,
    threshold: float = 0.0,
    k: int = 5,
    bank=None,
    label_map: torch.Tensor | None = None,
    labels: Sequence[str] | None = None,
    screen: int | None = None,
    batch_size: int = 256,
    match_threshold: float = 0.5,
    out_dir: str | Path | None = None,
    progress: StageProgress | None = None,
) -> dict:
    """AttFind end to end; a JSON-serialisable dict (its shape: `iceaudit.record.schema`)."""
    eff = style_effects(score_fn, G, ws, batch_size=batch_size, screen=screen, progress=progress)
    result: dict = {
        "n_faces": int(ws.shape[0]),
        "n_channels": len(eff.channels),
        "n_evaluated": int(eff.evaluated.sum()),
        "threshold": threshold,
        "seconds": eff.seconds,
        "renders": eff.renders,
        "classes": {},
    }
    picked: dict[str, dict] = {}
    for target in TARGETS:
        picks = greedy_select(eff, threshold, target, k)
        curve = sufficiency(score_fn, G, ws, eff, picks, threshold, target)
        n_other = int(other_class(eff.base, threshold, target).sum())
        result["classes"][target] = {
            "n_faces_to_flip": n_other,
            "top": picks,
            "sufficiency_curve": curve,  # share flipped by top-1, top-2, ...
            "sufficiency": curve[-1] if curve else 0.0,
        }
        for p in picks:
            picked.setdefault(p["channel"], p)
    picks_all = list(picked.values())
    matches = match_to_bank(G, ws, eff, picks_all, bank)
    regions = {}
    if label_map is not None and labels is not None:
        regions = localise_channels(G, ws, [eff.channels[p["position"]] for p in picks_all], label_map, labels)
    channels_out, unnamed = [], []
    for p in picks_all:
        rows = matches.get(p["channel"], [])
        best = rows[0] if rows else None
        explained = bool(best and max(best["latent_overlap"], best["image_cosine"]) >= match_threshold)
        entry = {
            "channel": p["channel"],
            "layer": p["layer"],
            "index": p["index"],
            "direction": p["direction"],
            "mean_effect": p["mean_effect"],
            "best_match": best,
            "explained_by_bank": explained,
            "region": regions.get(p["channel"], {}).get("region"),
            "region_votes": regions.get(p["channel"], {}).get("vote_share", {}),
        }
        channels_out.append(entry)
        if not explained:
            if out_dir is not None:
                ch = eff.channels[p["position"]]
                rel = Path("figures") / f"unnamed_{ch.layer}_{ch.channel}.png"
                walk_strip(G, ws, ch, eff.minimum[p["position"]], eff.maximum[p["position"]], Path(out_dir) / rel)
                entry["walk_strip"] = rel.as_posix()
            unnamed.append(entry)
    result["channels"] = channels_out
    result["unnamed_drivers"] = unnamed
    return result
