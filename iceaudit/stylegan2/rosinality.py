"""rosinality/stylegan2-pytorch checkpoints <-> the official layout.

A rosinality checkpoint is a `torch.save`d dict with `g_ema` (a state dict)
and, when converted from official weights, `latent_avg` (w_avg); training
checkpoints add `g`, `d`, optimiser states and `args`. We read it with
`torch.load(weights_only=True)` and rename its tensors to stylegan2-ada-pytorch
keys:

    style.{i+1}.*                 -> mapping.fc{i}.*
    latent_avg                    -> mapping.w_avg
    input.input [1,C,4,4]         -> synthesis.b4.const [C,4,4]
    conv1 / to_rgb1               -> synthesis.b4.conv1 / synthesis.b4.torgb
    convs.{2k} / convs.{2k+1}     -> synthesis.b{2^(k+3)}.conv0 / .conv1
    to_rgbs.{k}                   -> synthesis.b{2^(k+3)}.torgb
    noises.noise_{j} [1,1,R,R]    -> the j-th conv layer's noise_const [R,R]
  inside a layer:
    conv.weight [1,O,I,k,k]       -> weight [O,I,k,k]
    conv.modulation.{weight,bias} -> affine.{weight,bias}
    noise.weight [1]              -> noise_strength []
    activate.bias / bias [1,3,1,1]-> bias [O]

The arithmetic is the same on both sides (equalized-lr gains, lrelu gain
sqrt(2), [1,3,3,1] FIR up-sampling, bias_init=1 affines, transposed-conv
up-sampling with unflipped weights), so no tensor needs a numeric transform
except where the mapping lr multiplier differs from rosinality's fixed 0.01
(export only). The FIR kernels rosinality stores are checked, then dropped.
rosinality's demodulation adds 1e-8 to sum((scale*w*s)^2) where the official
code adds it to sum((w*s)^2): the same number to float32 precision.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from iceaudit.errors import UserError, brief

if TYPE_CHECKING:  # pragma: no cover
    from iceaudit.stylegan2.networks import Generator

ROSINALITY_LR_MLP = 0.01  # rosinality's Generator(lr_mlp=0.01); not stored in checkpoints


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """`torch.load(weights_only=True)` of a .pt file, with user-facing errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    try:
        # Training checkpoints store their argparse options; a Namespace is inert.
        # (torch < 2.5 has no safe_globals: such checkpoints are refused there.)
        allow = getattr(torch.serialization, "safe_globals", None)
        with allow([argparse.Namespace]) if allow else contextlib.nullcontext():
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        text = brief(exc)
        if "Unsupported global" in str(exc) or "weights_only" in str(exc):
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            name = f" `{found.group(1)}`" if found else ""
            raise UserError(f"refused to load {path}: it references{name}, which a weights-only "
                            "checkpoint may not; nothing from the file was executed") from exc
        raise UserError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt: {text})") from exc
    if not isinstance(ckpt, dict):
        raise UserError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    return ckpt


def is_rosinality_state(state: Mapping[str, Any]) -> bool:
    return "input.input" in state and "style.1.weight" in state


def _check_fir(state: Mapping[str, torch.Tensor], source: str) -> None:
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    expected = (f[:, None] * f[None, :]) / f.sum() ** 2 * 4  # up-sampling gain 4
    for key, value in state.items():
        if key.endswith(("blur.kernel", "upsample.kernel")):
            if value.shape != expected.shape or not torch.allclose(value.float(), expected, atol=1e-6):
                raise UserError(f"{source}: {key} is not the [1,3,3,1] filter; only that filter is supported")


def rosinality_kwargs(state: Mapping[str, torch.Tensor], source: str = "") -> dict[str, Any]:
    """Official Generator kwargs inferred from a rosinality `g_ema` state dict."""
    try:
        w_dim = int(state["style.1.weight"].shape[1])
        n_mlp = sum(1 for k in state if re.fullmatch(r"style\.\d+\.weight", k))
        num_up = sum(1 for k in state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k))
        resolution = 4 * 2 ** num_up
        channels = {4: int(state["conv1.conv.weight"].shape[1])}
        for k in range(num_up):
            channels[2 ** (k + 3)] = int(state[f"convs.{2 * k + 1}.conv.weight"].shape[1])
        img_channels = int(state["to_rgb1.conv.weight"].shape[1])
    except (KeyError, IndexError) as exc:
        raise UserError(f"{source}: not a complete rosinality generator (missing {exc})") from exc
    channel_max = max(channels.values())
    channel_base = channels[resolution] * resolution
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        raise UserError(f"{source}: channel counts {channels} do not follow the official "
                        "min(channel_base / resolution, channel_max) rule")
    return dict(z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=img_channels,
                mapping_kwargs=dict(num_layers=n_mlp, lr_multiplier=ROSINALITY_LR_MLP),
                synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max))


def _layer_names(resolution: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """([(rosinality conv, official layer)], [(rosinality torgb, official torgb)])
    in synthesis order; the conv list order is also the noise order."""
    convs = [("conv1", "synthesis.b4.conv1")]
    rgbs = [("to_rgb1", "synthesis.b4.torgb")]
    for k in range(int(math.log2(resolution)) - 2):
        res = 2 ** (k + 3)
        convs += [(f"convs.{2 * k}", f"synthesis.b{res}.conv0"), (f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1")]
        rgbs.append((f"to_rgbs.{k}", f"synthesis.b{res}.torgb"))
    return convs, rgbs


def rosinality_to_official(state: Mapping[str, torch.Tensor], latent_avg: torch.Tensor | None,
                           source: str = "") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(init kwargs, official-layout state dict) from a rosinality `g_ema`.
    Without `latent_avg` the returned dict has no `mapping.w_avg`."""
    kwargs = rosinality_kwargs(state, source)
    _check_fir(state, source)
    state = dict(state)
    out: dict[str, torch.Tensor] = {}

    def take(src: str, dst: str, shape: tuple | None = None) -> None:
        if src not in state:
            raise UserError(f"{source}: the checkpoint lacks tensor {src}")
        value = state.pop(src)
        out[dst] = value.reshape(shape) if shape is not None else value

    for i in range(kwargs["mapping_kwargs"]["num_layers"]):
        take(f"style.{i + 1}.weight", f"mapping.fc{i}.weight")
        take(f"style.{i + 1}.bias", f"mapping.fc{i}.bias")
    const = state.get("input.input")
    take("input.input", "synthesis.b4.const", tuple(const.shape[1:]) if const is not None else None)
    convs, rgbs = _layer_names(kwargs["img_resolution"])
    for j, (src, dst) in enumerate(convs):
        weight = state.get(f"{src}.conv.weight")
        take(f"{src}.conv.weight", f"{dst}.weight", tuple(weight.shape[1:]) if weight is not None else None)
        take(f"{src}.conv.modulation.weight", f"{dst}.affine.weight")
        take(f"{src}.conv.modulation.bias", f"{dst}.affine.bias")
        take(f"{src}.noise.weight", f"{dst}.noise_strength", ())
        take(f"{src}.activate.bias", f"{dst}.bias")
        noise = state.get(f"noises.noise_{j}")
        take(f"noises.noise_{j}", f"{dst}.noise_const", tuple(noise.shape[-2:]) if noise is not None else None)
    for src, dst in rgbs:
        weight = state.get(f"{src}.conv.weight")
        take(f"{src}.conv.weight", f"{dst}.weight", tuple(weight.shape[1:]) if weight is not None else None)
        take(f"{src}.conv.modulation.weight", f"{dst}.affine.weight")
        take(f"{src}.conv.modulation.bias", f"{dst}.affine.bias")
        take(f"{src}.bias", f"{dst}.bias", (-1,))
    leftover = sorted(k for k in state if not k.endswith(("blur.kernel", "upsample.kernel")))
    if leftover:
        raise UserError(f"{source}: tensors not part of a rosinality StyleGAN2 generator: {', '.join(leftover[:4])}")
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.reshape(-1)
    return kwargs, out


def official_to_rosinality(G: Generator) -> dict[str, Any]:
    """A rosinality checkpoint dict ({'g_ema', 'latent_avg'}) for generator G.

    Refuses configs rosinality's Generator cannot express. Note that
    rosinality's own code fixes channel counts by `channel_multiplier`; our
    reader accepts any official channel_base/channel_max layout."""
    if getattr(G, "architecture", "stylegan2") != "stylegan2":
        raise UserError("rosinality checkpoints hold StyleGAN2 generators only",
                        hint="Convert a StyleGAN3 to iceaudit's native format: NAME.safetensors.")
    kw = G.init_kwargs
    syn, mkw = kw["synthesis_kwargs"], kw["mapping_kwargs"]
    unsupported = []
    if kw["c_dim"] != 0:
        unsupported.append("class conditioning")
    if kw["z_dim"] != kw["w_dim"] or mkw.get("layer_features", kw["w_dim"]) != kw["w_dim"]:
        unsupported.append("z_dim/layer width different from w_dim")
    if syn.get("architecture", "skip") != "skip":
        unsupported.append(f"architecture {syn['architecture']!r}")
    if syn.get("conv_clamp") is not None:
        unsupported.append("conv_clamp")
    if list(syn.get("resample_filter", [1, 3, 3, 1])) != [1, 3, 3, 1]:
        unsupported.append("resample filter other than [1,3,3,1]")
    if syn.get("use_noise", True) is False or mkw.get("activation", "lrelu") != "lrelu":
        unsupported.append("noise-free or non-lrelu layers")
    if unsupported:
        raise UserError("this generator cannot be written as a rosinality checkpoint: " + ", ".join(unsupported))
    official = {k: v.detach().cpu().float() for k, v in G.state_dict().items()}
    # rosinality's mapping gain is lr_mlp / sqrt(in) with lr_mlp fixed to 0.01.
    ratio = float(mkw.get("lr_multiplier", 0.01)) / ROSINALITY_LR_MLP
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    fir = (f[:, None] * f[None, :]) / f.sum() ** 2 * 4
    state: dict[str, torch.Tensor] = {}
    for i in range(G.mapping.num_layers):
        state[f"style.{i + 1}.weight"] = official[f"mapping.fc{i}.weight"] * ratio
        state[f"style.{i + 1}.bias"] = official[f"mapping.fc{i}.bias"] * ratio
    state["input.input"] = official["synthesis.b4.const"][None]
    convs, rgbs = _layer_names(G.img_resolution)
    for j, (dst, src) in enumerate(convs):
        state[f"{dst}.conv.weight"] = official[f"{src}.weight"][None]
        state[f"{dst}.conv.modulation.weight"] = official[f"{src}.affine.weight"]
        state[f"{dst}.conv.modulation.bias"] = official[f"{src}.affine.bias"]
        state[f"{dst}.noise.weight"] = official[f"{src}.noise_strength"].reshape(1)
        state[f"{dst}.activate.bias"] = official[f"{src}.bias"]
        state[f"noises.noise_{j}"] = official[f"{src}.noise_const"][None, None]
        if src.endswith("conv0"):
            state[f"{dst}.conv.blur.kernel"] = fir.clone()
    for dst, src in rgbs:
        state[f"{dst}.conv.weight"] = official[f"{src}.weight"][None]
        state[f"{dst}.conv.modulation.weight"] = official[f"{src}.affine.weight"]
        state[f"{dst}.conv.modulation.bias"] = official[f"{src}.affine.bias"]
        state[f"{dst}.bias"] = official[f"{src}.bias"].reshape(1, -1, 1, 1)
        if dst != "to_rgb1":
            state[f"{dst}.upsample.kernel"] = fir.clone()
    return {"g_ema": {k: v.contiguous() for k, v in state.items()}, "latent_avg": official["mapping.w_avg"].clone()}


def estimate_w_avg(G: Generator, n: int = 10_000, seed: int = 0) -> torch.Tensor:
    """Mean of mapping(z) over `n` fixed-seed samples: what rosinality's
    `mean_latent` computes, for checkpoints saved without `latent_avg`."""
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.mapping(z.to(G.mapping.w_avg.device), None, psi=1.0)[:, 0].mean(0)


def load_rosinality(path: str | Path, device: Any = "cpu", ckpt: dict | None = None) -> Generator:
    """iceaudit's Generator with the weights of a rosinality checkpoint's `g_ema`."""
    from iceaudit.stylegan2.assemble import build_generator

    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    state = ckpt.get("g_ema")
    if not isinstance(state, Mapping) or not is_rosinality_state(state):
        keys = ", ".join(sorted(map(str, ckpt))[:6])
        raise UserError(f"{path} is not a rosinality generator checkpoint (no `g_ema` generator; has {keys})")
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise UserError(f"{path}: latent_avg is not a tensor")
    kwargs, official = rosinality_to_official(state, latent_avg, source=str(path))
    notes = []
    if latent_avg is None:
        official["mapping.w_avg"] = torch.zeros(kwargs["w_dim"])
    G = build_generator(kwargs, official, source=str(path), device=device)
    if latent_avg is None:
        G.mapping.w_avg.copy_(estimate_w_avg(G))
        notes.append("no latent_avg in the checkpoint: w_avg estimated from 10,000 fixed-seed samples")
    G.provenance = {"format": "rosinality", "path": str(path), "notes": notes}
    return G
