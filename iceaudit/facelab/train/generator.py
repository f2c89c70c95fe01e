"""Train the FaceLab demo generator: a StyleGAN2 whose G(z) reproduces render(phi(z)).

The generator is an ordinary iceaudit `Generator` (the same code path real
FFHQ weights take), trained by supervised regression: for a fresh batch of z
each step, render the true face render(phi(z)) and minimise a part-weighted
L1 distance to G(z). Small parts (eyes, brows, mouth, glasses) cover 1–2 % of
the pixels each; without the part weights plain L1 ignores them
(shared/docs/notes.md has the measurements).

Everything is seeded by (seed, step), so a run resumed from a checkpoint
draws the same batches as an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from iceaudit.errors import UserError
from iceaudit.facelab.latent import Z_DIM, render_z
from iceaudit.facelab.render import LABEL_NAMES
from iceaudit.stylegan2.networks import Generator

# Channels 4:256, 8:256, 16:128, 32:64, 64:32 (channel_base // res, capped), about
# 3.3 M parameters with the mapping: what a 2-core CPU trains in under an hour (BENCHMARKS.md).
DEMO_GENERATOR_KWARGS = dict(
    z_dim=Z_DIM,
    c_dim=0,
    w_dim=256,
    img_resolution=64,
    img_channels=3,
    # lr_multiplier 1 (not the official 0.01): in a regression the mapping has to
    # learn phi within a few thousand steps; at 0.01 it barely moves from its init.
    mapping_kwargs=dict(num_layers=4, lr_multiplier=1.0),
    synthesis_kwargs=dict(channel_base=2048, channel_max=256, num_fp16_res=0, conv_clamp=None),
)

# Loss weight per part label; masks are dilated by one pixel first.
PART_WEIGHTS = {
    "background": 1.0, "skin": 1.0, "hair": 1.0, "beard": 2.0, "nose": 6.0,
    "brows": 8.0, "glasses": 8.0, "eyes": 10.0, "mouth": 10.0,
}


@dataclass
class GeneratorTrainConfig:
    steps: int = 9000
    batch: int = 32
    dataset_size: int = 50_000  # pre-rendered faces; rendering per step would cost as much as the step
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2
    checkpoint_every: int = 100
    max_minutes: float | None = None  # safety stop; the result then depends on speed
    # Start the mapping's first layer with phi's projection A in its first rows, so the
    # factor coordinates A z^ are features from step 0 and the mapping only has to learn
    # phi's squashing and gates (the first run without it never learned the gates).
    init_mapping_from_phi: bool = True
    # Before the synthesis trains, fit the mapping alone so that a fixed random projection
    # of w reads out the factors (readout_features); the same readout stays in the loss.
    # Without it the first runs never learned phi's gates (faint glasses on every face).
    pretrain_mapping_steps: int = 6000
    readout_weight: float = 1.0
    precision: str = "fp32"  # "bf16": autocast the generator (1.6x faster on an AVX-512 BF16 CPU)
    generator_kwargs: dict = field(default_factory=lambda: json.loads(json.dumps(DEMO_GENERATOR_KWARGS)))


def pixel_weights(labels: torch.Tensor) -> torch.Tensor:
    """[N, R, R] part labels -> [N, 1, R, R] loss weights (max over 1-px-dilated parts)."""
    onehot = F.one_hot(labels.long(), len(LABEL_NAMES)).permute(0, 3, 1, 2).float()
    dilated = F.max_pool2d(onehot, kernel_size=3, stride=1, padding=1)
    w = torch.tensor([PART_WEIGHTS[name] for name in LABEL_NAMES]).view(1, -1, 1, 1)
    return (dilated * w).amax(dim=1, keepdim=True)


def regression_loss(fake: torch.Tensor, real: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Part-weighted L1 + 0.5 x L1 at half resolution + 0.5 x weighted L1 of image gradients."""
    norm = weights.mean()
    loss = ((fake - real).abs() * weights).mean() / norm
    loss = loss + 0.5 * (F.avg_pool2d(fake, 2) - F.avg_pool2d(real, 2)).abs().mean()
    for dim in (2, 3):
        gf, gr = fake.diff(dim=dim), real.diff(dim=dim)
        wg = weights.narrow(dim, 0, weights.shape[dim] - 1)
        loss = loss + 0.5 * ((gf - gr).abs() * wg).mean() / norm
    return loss


def readout_features(factors: torch.Tensor) -> torch.Tensor:
    """Factors [N, 19] -> features [N, 20] in [-1, 1]: each factor rescaled, the cyclic hue as cos/sin."""
    from iceaudit.facelab.factors import FACTORS

    cols = []
    for k, f in enumerate(FACTORS):
        x = (factors[:, k] - f.low) / f.span
        if f.cyclic:
            cols += [torch.cos(2 * math.pi * x), torch.sin(2 * math.pi * x)]
        else:
            cols.append(2 * x - 1)
    return torch.stack(cols, dim=1)


def readout_matrix(w_dim: int, n_features: int, seed: int) -> torch.Tensor:
    """[n_features, w_dim] with orthonormal rows: where each factor feature lives in W.

    A random rotation rather than the first coordinates, so that no single W axis
    is a factor either.
    """
    gen = torch.Generator().manual_seed(seed * 7919 + 11)
    q, _ = torch.linalg.qr(torch.randn(w_dim, n_features, generator=gen))
    return q.T.contiguous()


def readout_loss(w: torch.Tensor, z: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
    from iceaudit.facelab.latent import phi

    return F.mse_loss(w @ readout.T, readout_features(phi(z)))


def pretrain_mapping(G: Generator, cfg: GeneratorTrainConfig, readout: torch.Tensor,
                     log: Callable[[str], None] = print) -> dict[str, float]:
    """Fit the mapping alone to the factor readout on fresh z; returns the readout's R^2 per feature."""
    from iceaudit.facelab.latent import sample_z

    params = list(G.mapping.parameters())
    opt = torch.optim.Adam(params, lr=3e-3, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.pretrain_mapping_steps, eta_min=1e-4)
    for step in range(cfg.pretrain_mapping_steps):
        z = sample_z(256, cfg.seed * 1_000_003 + 500_000 + step)
        loss = readout_loss(G.mapping(z, None)[:, 0], z, readout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 1000 == 0:
            log(f"mapping pretraining {step + 1}/{cfg.pretrain_mapping_steps}  readout mse {loss.item():.4f}")
    return readout_r2(G, readout)


@torch.no_grad()
def readout_r2(G: Generator, readout: torch.Tensor, n: int = 4096, seed: int = 424_242) -> dict[str, float]:
    """R^2 of the factor features read linearly from w, on held-out z."""
    from iceaudit.facelab.factors import FACTORS
    from iceaudit.facelab.latent import phi, sample_z

    z = sample_z(n, seed)
    pred = G.mapping(z, None, skip_w_avg_update=True)[:, 0] @ readout.T
    true = readout_features(phi(z))
    r2 = 1 - (pred - true).square().mean(0) / true.var(0)
    names = [name for f in FACTORS for name in ((f.name + "_cos", f.name + "_sin") if f.cyclic else (f.name,))]
    return {name: round(float(v), 4) for name, v in zip(names, r2)}


@dataclass
class RenderedSet:
    """Pre-rendered training faces: z [N, 512], images uint8 [N, 3, R, R], labels uint8 [N, R, R]."""

    z: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images = self.images[index].float() / 127.5 - 1
        return self.z[index], images, self.labels[index]


def rendered_set(n: int, seed: int, resolution: int, cache: Path, log: Callable[[str], None] = print) -> RenderedSet:
    """render(phi(z)) for n latents drawn with `seed`, cached in `cache` (safetensors)."""
    from safetensors.torch import load_file, save_file

    from iceaudit.facelab.latent import sample_z

    if cache.exists():
        t = load_file(str(cache))
        if t["z"].shape[0] == n:
            return RenderedSet(t["z"], t["images"], t["labels"])
    z = sample_z(n, seed)
    images, labels = [], []
    t0 = time.time()
    for i in range(0, n, 1000):
        r = render_z(z[i:i + 1000], resolution=resolution)
        images.append(((r.images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
        labels.append(r.labels)
        log(f"rendered {min(n, i + 1000)}/{n} training faces  {time.time() - t0:.0f}s")
    data = RenderedSet(z, torch.cat(images), torch.cat(labels))
    save_file({"z": data.z, "images": data.images, "labels": data.labels}, str(cache))
    return data


def batch_index(seed: int, step: int, batch: int, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, n, (batch,), generator=gen)


def _lr_at(cfg: GeneratorTrainConfig, step: int) -> float:
    # Constant, then cosine down to 10 % over the last third.
    start = 2 * cfg.steps // 3
    if step < start:
        return cfg.lr
    t = (step - start) / max(1, cfg.steps - start)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def init_mapping_from_projection(G: Generator) -> None:
    """Rows 0..18 of mapping.fc0 compute A z^ (phi's factor coordinates), bias 0."""
    from iceaudit.facelab.latent import projection

    fc0 = G.mapping.fc0
    a = projection()  # [19, z_dim], orthonormal rows
    assert fc0.weight.shape[1] == a.shape[1] and fc0.weight.shape[0] >= a.shape[0], fc0.weight.shape
    fc0.weight[: a.shape[0]] = a / fc0.weight_gain
    fc0.bias[: a.shape[0]] = 0


def train_generator(
    cfg: GeneratorTrainConfig,
    workdir: str | Path,
    log: Callable[[str], None] = print,
) -> Generator:
    """Train (or resume) in `workdir`; returns the generator after `cfg.steps` steps."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    G = Generator(**cfg.generator_kwargs)
    if cfg.init_mapping_from_phi:
        init_mapping_from_projection(G)
    G.train()
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    step = 0
    ckpt = workdir / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state["config"] != asdict(cfg) | {"max_minutes": state["config"]["max_minutes"]}:
            raise UserError(f"{ckpt} was written with another training configuration; use a new --workdir")
        G.load_state_dict(state["generator"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        log(f"resumed at step {step}")
    w_dim = cfg.generator_kwargs["w_dim"]
    readout = readout_matrix(w_dim, readout_features(torch.zeros(1, 19)).shape[1], cfg.seed)
    if step == 0 and cfg.pretrain_mapping_steps > 0:
        r2 = pretrain_mapping(G, cfg, readout, log)
        log(f"mapping readout R^2 after pretraining: min {min(r2.values()):.3f}  {r2}")
    (workdir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    data = rendered_set(cfg.dataset_size, cfg.seed, cfg.generator_kwargs["img_resolution"],
                        workdir / f"renders-{cfg.seed}-{cfg.dataset_size}.safetensors", log)
    t0 = time.time()
    history = workdir / "loss.tsv"
    while step < cfg.steps:
        z, real, labels = data.batch(batch_index(cfg.seed, step, cfg.batch, cfg.dataset_size))
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            ws = G.mapping(z, None)
            fake = G.synthesis(ws, noise_mode="const")
        loss = regression_loss(fake.float(), real, pixel_weights(labels))
        if cfg.readout_weight > 0:
            loss = loss + cfg.readout_weight * readout_loss(ws[:, 0].float(), z, readout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with history.open("a") as fh:
            fh.write(f"{step}\t{loss.item():.5f}\t{time.time() - t0:.1f}\n")
        done = step == cfg.steps
        out_of_time = cfg.max_minutes is not None and (time.time() - t0) > 60 * cfg.max_minutes
        if step % cfg.checkpoint_every == 0 or done or out_of_time:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"generator": G.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "config": asdict(cfg)}, tmp)
            tmp.replace(ckpt)
            log(f"step {step}/{cfg.steps}  loss {loss.item():.4f}  {time.time() - t0:.0f}s")
        if out_of_time:
            log(f"stopped by --max-minutes at step {step}; run again to resume")
            break
    G.eval()
    return G


def train_and_export(cfg: GeneratorTrainConfig, workdir: str | Path, out: str | Path,
                     log: Callable[[str], None] = print) -> dict[str, float]:
    """Train (resuming if `workdir` has a checkpoint), then save the native generator to `out`."""
    from iceaudit.stylegan2.loaders import save_native

    t0 = time.time()
    G = train_generator(cfg, workdir, log)
    trained_steps = int(torch.load(Path(workdir) / "checkpoint.pt", weights_only=True)["step"])
    scores = fidelity(G)
    save_native(G, out, metadata={
        "name": "facelab-demo",
        "trained_by": "iceaudit facelab train-generator",
        "train_config": asdict(cfg),
        "trained_steps": trained_steps,
        "fidelity_mean_abs_error": scores,
    })
    log(f"saved {out} after {trained_steps} steps ({time.time() - t0:.0f}s this run); fidelity {scores}")
    return scores


@torch.no_grad()
def fidelity(G: Generator, n: int = 256, seed: int = 987_654, batch: int = 64) -> dict[str, float]:
    """Mean absolute pixel error of G(z) vs render(phi(z)) on held-out z, overall and per part.

    Images are in [-1, 1], so an error of 0.1 is 5 % of the value range.
    """
    from iceaudit.facelab.latent import sample_z

    z = sample_z(n, seed)
    err_sum = torch.zeros(len(LABEL_NAMES))
    count = torch.zeros(len(LABEL_NAMES))
    total = 0.0
    for i in range(0, n, batch):
        zb = z[i:i + batch]
        real = render_z(zb, resolution=G.img_resolution)
        fake = G(zb, noise_mode="const").clamp(-1, 1)
        err = (fake - real.images).abs().mean(dim=1)  # [B, R, R]
        total += float(err.sum())
        onehot = F.one_hot(real.labels.long(), len(LABEL_NAMES)).float()  # [B, R, R, L]
        err_sum += (onehot * err[..., None]).sum(dim=(0, 1, 2))
        count += onehot.sum(dim=(0, 1, 2))
    out = {"overall": total / (n * G.img_resolution**2)}
    for k, name in enumerate(LABEL_NAMES):
        if count[k] > 0:
            out[name] = float(err_sum[k] / count[k])
    return out


__all__ = ["DEMO_GENERATOR_KWARGS", "GeneratorTrainConfig", "train_generator", "train_and_export", "fidelity", "regression_loss",
           "pixel_weights"]
