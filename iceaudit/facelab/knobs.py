"""Style knobs: give a few FaceLab factors one style channel each, as FFHQ StyleGAN2 has.

Wu et al. (StyleSpace) found that in FFHQ StyleGAN2 single style channels
control single attributes (a smile, a hair colour). The demo generator learns
phi with every factor spread over hundreds of channels, so a per-channel method
(StylEx's AttFind) has nothing to find there. This stage fine-tunes the
trained generator so that, for the factors in `KNOBS`, one chosen conv style
channel *is* the factor:

- readout: on ordinary faces the channel's style equals ``mean + std * u_f``,
  where ``u_f = (A z^)_f`` is the factor's normal-space coordinate and
  mean / std are the channel's own statistics before tuning (same scale);
- edit: the same face with that channel set for a new draw ``u'`` must render
  as render(phi) with factor f moved to ``u'`` and nothing else, so the
  synthesis has to take f from this channel and ignore the copies of f the
  other channels still carry;
- the ordinary regression loss keeps G(z) = render(phi(z)), and an L1 loss to the
  untuned generator's output keeps G(z) where it was.

Status: experimental, not used for the shipped demo generator. The knobs learn (about one
prior SD of their factor per knob unit), but the tuned generator draws age cues and brows
less faithfully: the factor reader's R² on G(z) falls below the 0.75 the bank's truth check
needs for age and brow thickness (docs/facelab.md has the runs).

The other 17 factors stay spread out. The knob's channel is the one in the named layer
whose style already correlates most with the factor (the least disruptive choice); the
knobs are recorded in the generator's metadata.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from iceaudit.errors import UserError
from iceaudit.facelab.factors import FACTOR_NAMES, from_normal
from iceaudit.facelab.latent import normal_coords, sample_z
from iceaudit.facelab.render import render
from iceaudit.facelab.train_generator import RenderedSet, batch_index, pixel_weights, readout_features, \
    readout_loss, readout_matrix, regression_loss, rendered_set
from iceaudit.stylegan2.networks import Generator

# factor -> style layer of its knob: skin colour at 32 px, the background's brightness at 64 px.
# Tried and left out (2,000 steps each, docs/facelab.md): a smile knob at b16.conv0 did not
# learn (0.04 prior SDs of smile per knob unit); a hair-colour knob at b32.conv1 learned
# (0.75) but cost the factor reader's R² on G(z) for hair colour (0.91 -> 0.72) and age
# (0.79 -> 0.69), below what the bank's truth check needs.
KNOBS = {"skin_tone": "b32.conv0", "bg_brightness": "b64.conv0"}


@dataclass
class Knob:
    factor: str
    layer: str
    channel: int
    mean: float  # the channel's style statistics on G(z) before tuning
    std: float

    @property
    def name(self) -> str:
        return f"{self.layer}:{self.channel}"

    def style(self, u: torch.Tensor) -> torch.Tensor:
        """The knob's style value for normal-space factor value(s) ``u``."""
        return self.mean + self.std * u


@dataclass
class KnobConfig:
    steps: int = 1500
    batch: int = 32  # edited faces per step, each beside the unedited face it was made from
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
    edits: int = 16_000  # pre-rendered edited faces
    knob_weight: float = 1.0
    change_weight: float = 5.0
    teacher_weight: float = 1.0
    readout_weight: float = 1.0
    dataset_size: int = 50_000
    precision: str = "bf16"
    checkpoint_every: int = 100
    knobs: dict = field(default_factory=lambda: dict(KNOBS))


@torch.no_grad()
def choose_knobs(G: Generator, layers: dict[str, str], n: int = 4096, seed: int = 31_337,
                 spread: float = 0.4) -> list[Knob]:
    """For each factor, the channel of its layer whose style correlates most with u_f;
    its scale is at least ``spread * |mean|`` per unit of u."""
    z = sample_z(n, seed)
    u = normal_coords(z)
    styles = G.styles(G.mapping(z, None, skip_w_avg_update=True))
    knobs, taken = [], set()
    for factor, layer in layers.items():
        if factor not in FACTOR_NAMES:
            raise UserError(f"unknown factor {factor!r} for a style knob")
        if layer not in styles:
            raise UserError(f"style layer {layer!r} is not in this generator")
        s = styles[layer]
        uf = u[:, FACTOR_NAMES.index(factor)]
        sc, uc = s - s.mean(0), uf - uf.mean()
        corr = (sc * uc[:, None]).mean(0) / (sc.std(0) * uc.std() + 1e-12)
        order = torch.argsort(corr.abs(), descending=True).tolist()
        c = next(c for c in order if (layer, c) not in taken)
        taken.add((layer, c))
        sign = 1.0 if corr[c] >= 0 else -1.0  # keep the channel's existing sense
        mean = float(s[:, c].mean())
        # Modulation is relative (demodulation divides by the norm over input channels), so a
        # knob needs a range comparable to its mean to move the image without huge weights.
        std = max(float(s[:, c].std()), spread * abs(mean))
        knobs.append(Knob(factor, layer, c, mean, sign * std))
    return knobs


@dataclass
class EditSet:
    """Edited training faces: base latent index, knob index, new u, rendered image and labels."""

    index: torch.Tensor  # [E] into the ordinary set
    knob: torch.Tensor  # [E]
    u_new: torch.Tensor  # [E]
    images: torch.Tensor  # uint8 [E, 3, R, R]
    labels: torch.Tensor  # uint8 [E, R, R]


def edit_set(data: RenderedSet, knobs: list[Knob], n: int, seed: int, resolution: int,
             log: Callable[[str], None] = print) -> EditSet:
    """``n`` edits of training faces, the knobs in turn, each to a fresh normal draw."""
    gen = torch.Generator().manual_seed(seed * 7_777 + 5)
    index = torch.randint(0, data.z.shape[0], (n,), generator=gen)
    knob = torch.arange(n) % len(knobs)
    u_new = torch.randn(n, generator=gen)
    images, labels = [], []
    t0 = time.time()
    for i in range(0, n, 1000):
        sl = slice(i, min(n, i + 1000))
        u = normal_coords(data.z[index[sl]])
        cols = torch.tensor([FACTOR_NAMES.index(knobs[k].factor) for k in knob[sl].tolist()])
        u[torch.arange(u.shape[0]), cols] = u_new[sl]
        r = render(from_normal(u), resolution)
        images.append(((r.images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
        labels.append(r.labels)
        log(f"rendered {sl.stop}/{n} edited faces  {time.time() - t0:.0f}s")
    return EditSet(index, knob, u_new, torch.cat(images), torch.cat(labels))


def _set_knobs(styles: dict[str, torch.Tensor], knobs: list[Knob], which: torch.Tensor, u_new: torch.Tensor) -> dict:
    """Styles with, for sample i, knob ``which[i]`` set to ``u_new[i]`` (out of place)."""
    out = dict(styles)
    for k, knob in enumerate(knobs):
        rows = which == k
        if not rows.any():
            continue
        s = out[knob.layer]
        col = torch.zeros(s.shape[1], dtype=torch.bool)
        col[knob.channel] = True
        target = knob.style(u_new).to(s.dtype)[:, None]
        out[knob.layer] = torch.where(rows[:, None] & col[None, :], target, s)
    return out


def knob_readout_loss(styles: dict[str, torch.Tensor], knobs: list[Knob], u: torch.Tensor) -> torch.Tensor:
    losses = []
    for knob in knobs:
        s = styles[knob.layer][:, knob.channel].float()
        target = knob.style(u[:, FACTOR_NAMES.index(knob.factor)])
        losses.append(((s - target) / knob.std).square().mean())
    return torch.stack(losses).mean()


def _lr_at(cfg: KnobConfig, step: int) -> float:
    t = step / max(1, cfg.steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train_knobs(G: Generator, cfg: KnobConfig, workdir: str | Path, log: Callable[[str], None] = print) -> tuple[Generator, list[Knob]]:
    """Fine-tune ``G`` (a trained demo generator) in place; resumable from ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    ckpt = workdir / "knobs.pt"
    step = 0
    teacher = copy.deepcopy(G).eval().requires_grad_(False)  # the generator before tuning
    G.requires_grad_(True)
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    state = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt.exists() else None
    if state is not None:
        if state["config"] != asdict(cfg):
            raise UserError(f"{ckpt} was written with another configuration; use a new --workdir")
        G.load_state_dict(state["generator"])
        teacher.load_state_dict(state["teacher"])
        opt.load_state_dict(state["optimizer"])
        knobs = [Knob(**k) for k in state["knobs"]]
        step = int(state["step"])
        log(f"resumed at step {step}")
    else:
        knobs = choose_knobs(G, cfg.knobs)
    log("knobs: " + ", ".join(f"{k.factor} -> {k.name}" for k in knobs))
    res = G.img_resolution
    data = rendered_set(cfg.dataset_size, cfg.seed, res, workdir / f"renders-{cfg.seed}-{cfg.dataset_size}.safetensors", log)
    edits = edit_set(data, knobs, cfg.edits, cfg.seed, res, log)
    readout = readout_matrix(G.w_dim, readout_features(torch.zeros(1, 19)).shape[1], cfg.seed)
    G.train()
    t0 = time.time()
    history = workdir / "knobs_loss.tsv"
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        # Each step: `batch` edited faces and the unedited faces they were made from.
        e = batch_index(cfg.seed + 1, step, cfg.batch, cfg.edits)
        z, real, labels = data.batch(edits.index[e])
        real_e = edits.images[e].float() / 127.5 - 1
        n = z.shape[0]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            ws = G.mapping(z, None)
            styles = G.styles(ws)
            both = {k: torch.cat([v, v]) for k, v in styles.items()}
            which = torch.cat([torch.full((n,), -1, dtype=torch.long), edits.knob[e]])
            u_new = torch.cat([torch.zeros(n), edits.u_new[e]])
            fake = G.synthesis_from_styles(_set_knobs(both, knobs, which, u_new)).float()
        fake_b, fake_e = fake[:n], fake[n:]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            before = teacher(z, None, noise_mode="const").float()
        weights = pixel_weights(labels)
        weights_e = pixel_weights(edits.labels[e])
        loss_plain = regression_loss(fake_b, real, weights)
        loss_edit = regression_loss(fake_e, real_e, weights_e)
        # The edit's change itself, so that the small coloured or curved region it moves
        # is not drowned by the reconstruction error of the whole face.
        weights_c = torch.maximum(weights, weights_e)
        loss_change = ((fake_e - fake_b) - (real_e - real)).abs().mul(weights_c).mean() / weights_c.mean() * cfg.change_weight
        loss_readout = readout_loss(ws[:, 0].float(), z, readout)
        loss_knob = knob_readout_loss(styles, knobs, normal_coords(z))
        loss_teacher = (fake_b - before).abs().mean()
        loss = (loss_plain + loss_edit + loss_change + cfg.teacher_weight * loss_teacher
                + cfg.readout_weight * loss_readout + cfg.knob_weight * loss_knob)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with history.open("a") as fh:
            parts = (loss_plain, loss_edit, loss_change, loss_teacher, loss_knob)
            fh.write(f"{step}\t" + "\t".join(f"{x.item():.5f}" for x in parts) + f"\t{time.time() - t0:.1f}\n")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"generator": G.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "config": asdict(cfg), "knobs": [asdict(k) for k in knobs],
                        "teacher": teacher.state_dict()}, tmp)
            tmp.replace(ckpt)
            log(f"step {step}/{cfg.steps}  plain {loss_plain.item():.4f}  edit {loss_edit.item():.4f}  "
                f"change {loss_change.item():.4f}  teacher {loss_teacher.item():.4f}  knob {loss_knob.item():.4f}  "
                f"{time.time() - t0:.0f}s")
    G.eval().requires_grad_(False)
    return G, knobs


@torch.no_grad()
def knob_effects(G: Generator, knobs: list[Knob], reader, n: int = 64, seed: int = 4_242, reach: float = 1.5) -> dict[str, dict[str, float]]:
    """Per knob: the read change of every factor, in prior SDs per knob unit, when the
    channel goes from ``mean - reach*std`` to ``mean + reach*std`` on ``n`` faces."""
    from iceaudit.facelab.factors import sample_factors
    from iceaudit.facelab.reader import wrap_difference

    z = sample_z(n, seed)
    styles = G.styles(G.mapping(z, None, skip_w_avg_update=True))
    sds = sample_factors(4096, seed).std(0)
    out = {}
    for k, knob in enumerate(knobs):
        which = torch.full((n,), k)
        lo = reader.read(G.synthesis_from_styles(_set_knobs(styles, knobs, which, torch.full((n,), -reach))))
        hi = reader.read(G.synthesis_from_styles(_set_knobs(styles, knobs, which, torch.full((n,), reach))))
        out[knob.factor] = {name: float(wrap_difference(name, hi[name] - lo[name]).mean() / (2 * reach)
                                        / sds[FACTOR_NAMES.index(name)]) for name in hi}
    return out


def tune_and_export(generator: str | Path, cfg: KnobConfig, workdir: str | Path, out: str | Path,
                    log: Callable[[str], None] = print) -> dict:
    """Load a trained demo generator, add the knobs, write it to ``out``; returns its metadata."""
    from iceaudit.stylegan2.loaders import load_generator, save_native
    from iceaudit.facelab.train_generator import fidelity

    G = load_generator(generator)
    base = dict(getattr(G, "provenance", {}).get("metadata", {}))
    if base.get("style_knobs"):
        raise UserError(f"{generator} already has style knobs", hint="start from the output of `train-generator`")
    t0 = time.time()
    G, knobs = train_knobs(G, cfg, workdir, log)
    scores = fidelity(G)
    meta = {k: v for k, v in base.items() if k != "source"}
    meta.update({
        "trained_by": "iceaudit facelab train-generator, then iceaudit facelab train-knobs",
        "fidelity_mean_abs_error": scores,
        "fidelity_before_knobs": base.get("fidelity_mean_abs_error"),
        "style_knobs": [asdict(k) for k in knobs],
        "knob_config": json.loads(json.dumps(asdict(cfg))),
    })
    save_native(G, out, metadata=meta)
    log(f"saved {out} ({time.time() - t0:.0f}s); fidelity {scores}")
    return meta


__all__ = ["KNOBS", "Knob", "KnobConfig", "choose_knobs", "train_knobs", "knob_effects", "tune_and_export"]
