"""Style knobs: give a few FaceLab factors one style channel each, as FFHQ StyleGAN2 has.

Wu et al. (StyleSpace) found that in FFHQ StyleGAN2 single style channels
control single attributes (a smile, a hair colour). The demo generator learns
phi with every factor spread over hundreds of channels, so a per-channel method
(StylEx's AttFind) has nothing to find there. This stage rewires the trained
generator so that, for the factors in `KNOBS`, one chosen conv style channel
*is* the factor, and then lets the synthesis learn to draw it from there:

1. direction: sweeping a factor's normal coordinate u_f (all else fixed) moves w
   along a curve that is almost a line; its first principal direction d_f
   holds the factor (with it held fixed, the reader's skin tone on G(z) no
   longer follows the truth: docs/facelab.md);
2. routing: every affine layer (conv and toRGB, all resolutions) is changed
   to see w with its components along the knob directions held at their mean,
   except the knob channel, whose style becomes ``mean + std * x_f`` with x_f
   the standardised coordinate of w along d_f. No other style depends on the
   factor any more: the knob is the only way it reaches the synthesis;
3. retraining: the synthesis (not the mapping) is trained with the generator's
   own regression loss, G(z) = render(phi(z)), until it draws the factor from
   the knob; after every step the affines are projected back onto the routing,
   so it stays exact.

A knob edit therefore changes the factor and, as far as the synthesis is
faithful, nothing else.

The knob's channel is the one in the named layer whose style already correlates
most with the factor (its downstream weights already draw something like it); the
knobs are recorded in the generator's metadata.

The shipped demo generator is made this way (`make demo-world`), with the knobs in
`KNOBS`; it is as faithful on held-out faces as the generator it was tuned from
(docs/facelab.md, "Style knobs").
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from iceaudit.errors import UserError
from iceaudit.facelab.factors import FACTOR_NAMES
from iceaudit.facelab.latent import normal_coords, normalise_z, projection, sample_z
from iceaudit.facelab.train.generator import batch_index, pixel_weights, regression_loss, rendered_set
from iceaudit.stylegan2.networks import Generator

# factor -> style layer of its knob: skin colour at 16 px, the background's brightness at 64 px.
# (A skin knob at b32.conv0 was as easy to make but the generator drew brows worse:
# reader R² of brow thickness 0.79 against 0.85 at b16; docs/facelab.md.)
KNOBS = {"skin_tone": "b16.conv0", "bg_brightness": "b64.conv0"}


@dataclass
class Knob:
    factor: str
    layer: str
    channel: int
    mean: float  # the channel's style statistics on G(z) before routing
    std: float  # style change per knob unit (one SD of the factor's coordinate in W)

    @property
    def name(self) -> str:
        return f"{self.layer}:{self.channel}"

    def style(self, u: torch.Tensor) -> torch.Tensor:
        """The knob's style value at knob unit(s) ``u`` (0: the mean face, +-1: one SD)."""
        return self.mean + self.std * u


@dataclass
class KnobConfig:
    steps: int = 9000  # as many as train-generator: the synthesis relearns how to draw the knob factors
    batch: int = 32
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
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


def factor_directions(G: Generator, factors: list[str], n: int = 1024, seed: int = 77,
                      reach: float = 2.5) -> torch.Tensor:
    """[k, w_dim] unit directions: where each factor moves w (first principal direction of
    the change of w as u_f sweeps -reach..reach with the other coordinates fixed), oriented
    so that w's coordinate along it grows with the factor."""
    a_rows = projection()
    z = normalise_z(sample_z(n, seed))  # then u = A z exactly
    out = []
    with torch.no_grad():
        for factor in factors:
            a = a_rows[FACTOR_NAMES.index(factor)]
            base = z - (z @ a)[:, None] * a[None]
            w_of = lambda v: G.mapping(base + v * a[None], None, skip_w_avg_update=True)[:, 0]  # noqa: E731
            w0 = w_of(0.0)
            moves = torch.cat([w_of(float(v)) - w0 for v in torch.linspace(-reach, reach, 11)])
            d = torch.linalg.svd(moves, full_matrices=False).Vh[0]
            if float(((w_of(reach) - w_of(-reach)) @ d).mean()) < 0:
                d = -d
            out.append(d)
    return torch.stack(out)


def _affines(G: Generator):
    for layer in G.synthesis.style_layers:
        yield layer.name, G.synthesis._module(layer.name).affine


@torch.no_grad()
def route_through_knobs(G: Generator, knobs: list[Knob], directions: torch.Tensor, n: int = 4096,
                        seed: int = 31_337) -> None:
    """Rewire ``G``'s affine layers in place: the knob channels read their factor's coordinate
    along ``directions`` (one row per knob), every other style sees none of it."""
    assert directions.shape == (len(knobs), G.w_dim)
    w = G.mapping(sample_z(n, seed), None, skip_w_avg_update=True)[:, 0]
    basis = torch.linalg.qr(directions.T).Q  # [w_dim, k] orthonormal
    hold = torch.eye(G.w_dim) - basis @ basis.T  # drop the knob directions ...
    w_mean = w.mean(0)
    kept = basis @ (basis.T @ w_mean)  # ... and put back their mean
    coords_of = torch.linalg.pinv(directions)  # [w_dim, k]: w -> coordinate along each direction
    coords = w @ coords_of
    mu, sigma = coords.mean(0), coords.std(0)
    for name, affine in _affines(G):
        weight = affine.weight * affine.weight_gain  # the effective [channels, w_dim] map
        bias = affine.bias * affine.bias_gain
        new_weight, new_bias = weight @ hold, bias + weight @ kept
        for k, knob in enumerate(knobs):
            if knob.layer == name:  # style = mean + std * (standardised coordinate along d_k)
                new_weight[knob.channel] = knob.std / sigma[k] * coords_of[:, k]
                new_bias[knob.channel] = knob.mean - knob.std * mu[k] / sigma[k]
        affine.weight.copy_(new_weight / affine.weight_gain)
        affine.bias.copy_(new_bias / affine.bias_gain)


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


def _lr_at(cfg: KnobConfig, step: int) -> float:
    t = step / max(1, cfg.steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def keep_routing(G: Generator, knobs: list[Knob], directions: torch.Tensor, knob_rows: dict[str, tuple]) -> None:
    """After an optimiser step: every affine row but the knobs' sees nothing along
    ``directions`` again; the knob rows are put back as routed."""
    basis = torch.linalg.qr(directions.T).Q
    for name, affine in _affines(G):
        affine.weight.sub_((affine.weight @ basis) @ basis.T)
        for knob in knobs:
            if knob.layer == name:
                weight, bias = knob_rows[knob.name]
                affine.weight[knob.channel] = weight
                affine.bias[knob.channel] = bias


def train_knobs(G: Generator, cfg: KnobConfig, workdir: str | Path, log: Callable[[str], None] = print) -> tuple[Generator, list[Knob]]:
    """Route the knob factors of ``G`` (a trained demo generator) and retrain its synthesis,
    in place; resumable from ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    ckpt = workdir / "knobs.pt"
    step = 0
    state = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt.exists() else None
    if state is not None:
        if state["config"] != asdict(cfg):
            raise UserError(f"{ckpt} was written with another configuration; use a new --workdir")
        G.load_state_dict(state["generator"])
        knobs = [Knob(**k) for k in state["knobs"]]
        directions = state["directions"]
        step = int(state["step"])
        log(f"resumed at step {step}")
    else:
        knobs = choose_knobs(G, cfg.knobs)
        directions = factor_directions(G, [k.factor for k in knobs])
        route_through_knobs(G, knobs, directions)
    log("knobs: " + ", ".join(f"{k.factor} -> {k.name}" for k in knobs))
    modules = dict(_affines(G))
    knob_rows = {k.name: (modules[k.layer].weight[k.channel].detach().clone(),
                          modules[k.layer].bias[k.channel].detach().clone()) for k in knobs}
    # The mapping stays as trained: were it to learn, it could hand the synthesis new copies
    # of a knob factor along other directions of w.
    G.requires_grad_(False)
    params = list(G.synthesis.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    data = rendered_set(cfg.dataset_size, cfg.seed, G.img_resolution,
                        workdir / f"renders-{cfg.seed}-{cfg.dataset_size}.safetensors", log)
    G.train()
    t0 = time.time()
    history = workdir / "knobs_loss.tsv"
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        z, real, labels = data.batch(batch_index(cfg.seed + 1, step, cfg.batch, cfg.dataset_size))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            fake = G(z, None, noise_mode="const").float()
        loss = regression_loss(fake, real, pixel_weights(labels))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        keep_routing(G, knobs, directions, knob_rows)
        step += 1
        with history.open("a") as fh:
            fh.write(f"{step}\t{loss.item():.5f}\t{time.time() - t0:.1f}\n")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"generator": G.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "config": asdict(cfg), "knobs": [asdict(k) for k in knobs],
                        "directions": directions}, tmp)
            tmp.replace(ckpt)
            log(f"step {step}/{cfg.steps}  loss {loss.item():.4f}  {time.time() - t0:.0f}s")
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
    from iceaudit.facelab.train.generator import fidelity

    G = load_generator(generator)
    base = dict(getattr(G, "provenance", {}).get("metadata", {}))
    source = {"generator": str(generator), "fingerprint": G.fingerprint()}
    if base.get("style_knobs"):
        raise UserError(f"{generator} already has style knobs", hint="start from the output of `train-generator`")
    t0 = time.time()
    G, knobs = train_knobs(G, cfg, workdir, log)
    scores = fidelity(G)
    meta = {k: v for k, v in base.items() if k != "source"}
    meta.update({
        "source": source,  # what was tuned (not the loader's provenance: that holds a local path)
        "trained_by": "iceaudit facelab train-generator, then iceaudit facelab train-knobs",
        "fidelity_mean_abs_error": scores,
        "fidelity_before_knobs": base.get("fidelity_mean_abs_error"),
        "style_knobs": [asdict(k) for k in knobs],
        "knob_config": json.loads(json.dumps(asdict(cfg))),
    })
    save_native(G, out, metadata=meta)
    log(f"saved {out} ({time.time() - t0:.0f}s); fidelity {scores}")
    return meta


__all__ = ["KNOBS", "Knob", "KnobConfig", "choose_knobs", "factor_directions", "route_through_knobs", "keep_routing",
           "train_knobs", "knob_effects", "tune_and_export"]
