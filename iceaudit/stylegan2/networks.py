"""StyleGAN2 generator in pure PyTorch (Karras et al. 2020, "Analyzing and
Improving the Image Quality of StyleGAN"; ADA variant of the code base).

Constructor arguments and state-dict keys are those of NVlabs'
stylegan2-ada-pytorch, so an official network's ``_init_kwargs`` and tensors
map 1:1 onto these classes; the arithmetic follows its reference operators
(see ops.py) so identical weights give identical images.

On top of the official interface the generator exposes StyleSpace
(Wu et al. 2021): every per-layer affine output ("style", toRGB included) by
its official name (``b4.conv1``, ``b4.torgb``, ``b8.conv0`` …), synthesis
from styles, and partial synthesis (run the layers before an edited one once,
then only the rest for each edit).

Style convention: the style of a layer is the raw output of its affine layer,
``affine(w)``, for toRGB layers too (the toRGB weight gain 1/sqrt(C) is
applied inside the layer, as StyleSpace does). Edits in S are edits of these
values.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch

from iceaudit.precision import autocast, check_precision
from iceaudit.stylegan2.ops import (
    assert_shape,
    bias_act,
    conv2d_resample,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)

NOISE_MODES = ("const", "random", "none")
# Blocks in reduced precision when a file says num_fp16_res = 0 (TF-converted config-f pickles
# do): the official training default. At 1024 px the blocks up to b256 take ~6 % of the CPU time
# (BENCHMARKS.md, "Partial synthesis"), so the top four hold most of the work; the low ones
# overflow in fp16 when trained in fp32 (benchmarks/bench_precision.py: the demo generator with
# its b4 block in fp16 too → worst pixel off by 97 % of the largest).
DEFAULT_REDUCED_RES = 4

# ----------------------------------------------------------------------------
# Layers


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate: weights are stored as
    N(0, 1) / lr_multiplier and scaled at run time by lr_multiplier / sqrt(fan_in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: str = "linear", lr_multiplier: float = 1, bias_init: float = 0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.in_features])
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(torch.nn.Module):
    """Plain (unmodulated) equalized-lr convolution; the generator uses it only
    as the 1×1 upsampling skip of the 'resnet' architecture."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: list[int] = [1, 3, 3, 1], conv_clamp: float | None = None,
                 channels_last: bool = False, trainable: bool = True):
        super().__init__()
        if down != 1:
            raise NotImplementedError("Conv2dLayer: downsampling is not needed by the generator")
        self.activation = activation
        self.up = up
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = bias_act_gain(activation)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias_t = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_t is not None:
                self.register_buffer("bias", bias_t)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


def bias_act_gain(activation: str) -> float:
    from iceaudit.stylegan2.ops import ACTIVATIONS

    return ACTIVATIONS[activation][1]


class MappingNetwork(torch.nn.Module):
    """z (and optional label c) → w: normalize, MLP of `num_layers` equalized
    dense layers, broadcast to `num_ws` copies, optional truncation toward w_avg."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None,
                 num_layers: int = 8, embed_features: int | None = None,
                 layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1],
                                                          activation=activation, lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, psi: float = 1.0,
                truncation_cutoff: int | None = None, *, truncation_psi: float | None = None,
                skip_w_avg_update: bool = False) -> torch.Tensor:
        if truncation_psi is not None:  # official keyword name
            psi = truncation_psi
        x = None
        if self.z_dim > 0:
            assert_shape(z, [None, self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: pass c of shape [N, {self.c_dim}]")
            assert_shape(c, [None, self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        # Truncation trick: w' = w_avg + psi (w - w_avg), on the first `cutoff` ws only.
        if psi != 1:
            assert self.w_avg_beta is not None, "truncation needs w_avg"
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], psi)
        return x


class SynthesisLayer(torch.nn.Module):
    """Modulated 3×3 convolution (optionally upsampling ×2) + noise + bias + lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 kernel_size: int = 3, up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: list[int] = [1, 3, 3, 1], conv_clamp: float | None = None,
                 channels_last: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = bias_act_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                fused_modconv: bool = True, gain: float = 1) -> torch.Tensor:
        return self.forward_styles(x, self.affine(w), noise_mode, fused_modconv, gain)

    def forward_styles(self, x: torch.Tensor, styles: torch.Tensor, noise_mode: str = "const",
                       fused_modconv: bool | None = True, gain: float = 1) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        assert_shape(x, [None, self.weight.shape[1], self.resolution // self.up, self.resolution // self.up])
        assert_shape(styles, [x.shape[0], self.in_channels])
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        if fused_modconv is None:
            fused_modconv = cpu_prefers_fused(x.shape[0], self.resolution ** 2, self.weight[0].numel())
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(torch.nn.Module):
    """Modulated 1×1 convolution to RGB, no demodulation, no activation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        return self.forward_styles(x, self.affine(w), fused_modconv)

    def forward_styles(self, x: torch.Tensor, styles: torch.Tensor, fused_modconv: bool | None = True) -> torch.Tensor:
        assert_shape(styles, [x.shape[0], self.in_channels])
        if fused_modconv is None:
            fused_modconv = cpu_prefers_fused(x.shape[0], x.shape[2] * x.shape[3], self.weight[0].numel())
        x = modulated_conv2d(x, self.weight, styles * self.weight_gain, demodulate=False,
                             fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
    """One resolution: [conv0 (up ×2)], conv1, [torgb]; the image path is
    upsampled and summed ('skip'), or only the last block emits RGB ('orig',
    'resnet'; the latter adds a 1×1 upsampling shortcut around the convs)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, is_last: bool, architecture: str = "skip",
                 resample_filter: list[int] = [1, 3, 3, 1], conv_clamp: float | None = None,
                 use_fp16: bool = False, fp16_channels_last: bool = False, **layer_kwargs):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.img_channels, self.is_last = resolution, img_channels, is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16  # kept for kwargs compatibility; precision is chosen by Generator.precision
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        if in_channels != 0:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    @property
    def layer_names(self) -> list[str]:
        """Styled layers of this block in execution order."""
        names = ["conv0"] if self.in_channels != 0 else []
        names.append("conv1")
        if self.num_torgb:
            names.append("torgb")
        return names

    def enter(self, x: torch.Tensor | None, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Block input: the learned constant (first block) or the previous
        features; for 'resnet' also the shortcut branch. Returns (x, shortcut)."""
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([batch, 1, 1, 1])
            return x, None
        assert_shape(x, [batch, self.in_channels, self.resolution // 2, self.resolution // 2])
        x = x.to(dtype)
        shortcut = self.skip(x, gain=np.sqrt(0.5)) if self.architecture == "resnet" else None
        return x, shortcut

    def run_layer(self, name: str, x: torch.Tensor, img: torch.Tensor | None, shortcut: torch.Tensor | None,
                  styles: torch.Tensor, noise_mode: str, fused_modconv: bool | None):
        """Run one styled layer; returns the new (x, img, shortcut)."""
        if name == "conv0":
            x = self.conv0.forward_styles(x, styles, noise_mode, fused_modconv)
        elif name == "conv1":
            resnet = self.architecture == "resnet" and self.in_channels != 0
            x = self.conv1.forward_styles(x, styles, noise_mode, fused_modconv, gain=np.sqrt(0.5) if resnet else 1)
            if resnet:
                x, shortcut = shortcut + x, None
        elif name == "torgb":
            if img is not None:
                assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
                img = upsample2d(img, self.resample_filter)
            y = self.torgb.forward_styles(x, styles, fused_modconv).to(torch.float32)
            img = img.add_(y) if img is not None else y  # in place: upsample2d made img just now
        else:
            raise KeyError(name)
        return x, img, shortcut

    def forward(self, x, img, ws, noise_mode: str = "const", fused_modconv: bool | None = None):
        """Official-style call: ws [N, num_conv + num_torgb, w_dim]."""
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        if fused_modconv is None:
            fused_modconv = choose_fused_modconv(ws, self.training)
        x, shortcut = self.enter(x, ws.shape[0], torch.float32)
        for i, name in enumerate(self.layer_names):
            s = getattr(self, name).affine(ws[:, i])
            x, img, shortcut = self.run_layer(name, x, img, shortcut, s, noise_mode, fused_modconv)
        return x, img


def choose_fused_modconv(like: torch.Tensor, training: bool, precision: str = "fp32") -> bool | None:
    """Which modulated-conv form to run (both give the same numbers up to rounding).

    CUDA: the official inference choice — fused (one grouped conv of per-sample
    weights) in fp32 or for a single sample, non-fused for reduced-precision batches.
    CPU: None — each layer chooses by its shape (`cpu_prefers_fused`). Training: non-fused.
    """
    if training:
        return False
    if like.device.type != "cuda":
        return None
    return precision == "fp32" or int(like.shape[0]) == 1


def cpu_prefers_fused(batch: int, plane: int, fan_in: int) -> bool:
    """On CPU: one image → fused (then a plain convolution, the official code's operations
    one for one); a batch → fused where the output plane (H·W) is large next to the weights'
    fan-in (I·k·k), since non-fused pays two passes over the activations and fused one pass
    over per-sample weights. Measured per layer shape (benchmarks/bench_modconv.py, BENCHMARKS.md
    "Modulated convolution per layer"): in batches of 4–16, config-f b8–b32 (512 channels)
    non-fused 1.3–11× faster, b256–b512 fused 1.2–1.3× faster."""
    return batch == 1 or plane >= 4 * fan_in


# ----------------------------------------------------------------------------
# StyleSpace records and partial-synthesis state


@dataclass(frozen=True)
class StyleLayer:
    """One styled layer of the synthesis network."""

    name: str          # official module path below `synthesis`, e.g. 'b8.conv0'
    channels: int      # number of style channels (= the layer's input channels)
    ws_index: int      # which of the num_ws w vectors feeds its affine layer
    resolution: int    # output resolution of the layer
    kind: str          # 'conv' or 'torgb'


@dataclass
class SynthesisState:
    """Activations cached just before layer `start` (from `synthesis_prefix`).

    x: features entering `start`; img: the RGB image accumulated so far
    (None before the first toRGB); shortcut: the resnet shortcut branch when
    `start` is inside a resnet block. Tensors are never modified in place.
    """

    start: str
    x: torch.Tensor
    img: torch.Tensor | None = None
    shortcut: torch.Tensor | None = None
    noise_mode: str = "const"

    @property
    def batch_size(self) -> int:
        return int(self.x.shape[0])

    def _map(self, fn) -> "SynthesisState":
        return SynthesisState(self.start, fn(self.x), None if self.img is None else fn(self.img),
                              None if self.shortcut is None else fn(self.shortcut), self.noise_mode)

    def repeat_interleave(self, repeats: int) -> "SynthesisState":
        """Repeat each cached sample `repeats` times (sample i → rows i*k … i*k+k-1)."""
        return self._map(lambda t: t.repeat_interleave(repeats, dim=0))

    def index_select(self, index: torch.Tensor) -> "SynthesisState":
        return self._map(lambda t: t.index_select(0, index.to(t.device)))

    def to(self, *args, **kwargs) -> "SynthesisState":
        return self._map(lambda t: t.to(*args, **kwargs))


# ----------------------------------------------------------------------------
# Synthesis network and generator


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] → images [N, img_channels, R, R]."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs):
        if not (img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        # where `precision` applies: the official fp16 blocks, or the default top resolutions
        self.reduced_resolution = fp16_resolution if num_fp16_res > 0 else \
            max(2 ** (self.img_resolution_log2 + 1 - DEFAULT_REDUCED_RES), 8)

        self.num_ws = 0
        layers: list[StyleLayer] = []
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last,
                                   use_fp16=(res >= fp16_resolution), **block_kwargs)
            for i, name in enumerate(block.layer_names):
                layer = getattr(block, name)
                layers.append(StyleLayer(f"b{res}.{name}", layer.in_channels, self.num_ws + i, res,
                                         "torgb" if name == "torgb" else "conv"))
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)
        self.style_layers = layers
        self.fused_modconv: bool | None = None  # None = by device (choose_fused_modconv), on CPU per layer
        self.precision = "fp32"

    # -- the official call -------------------------------------------------

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", fused_modconv: bool | None = None,
                force_fp32: bool = True) -> torch.Tensor:
        """`force_fp32` is accepted for official call sites; we always compute
        in float32 unless `precision` says otherwise."""
        return self.synthesis_from_styles(self.styles(ws), noise_mode=noise_mode, fused_modconv=fused_modconv)

    # -- StyleSpace --------------------------------------------------------

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        return {sl.name: self._module(sl.name).affine(ws[:, sl.ws_index]) for sl in self.style_layers}

    def synthesis_from_styles(self, styles: Mapping[str, torch.Tensor], noise_mode: str = "const",
                              fused_modconv: bool | None = None) -> torch.Tensor:
        state = self.synthesis_prefix(styles, self.style_layers[0].name, noise_mode, fused_modconv)
        return self.synthesis_suffix(state, styles, fused_modconv=fused_modconv)

    def synthesis_prefix(self, styles: Mapping[str, torch.Tensor], start: str, noise_mode: str = "const",
                         fused_modconv: bool | None = None) -> SynthesisState:
        """Run every layer before `start` once and cache what `start` needs."""
        self._check_noise_mode(noise_mode)
        start_pos = self._layer_position(start)
        batch = self._batch_of(styles, self.style_layers[:start_pos + 1])
        ref = next(iter(styles.values()))
        fused = self._fused(ref, fused_modconv)
        x = img = shortcut = None
        for block, name, full in self._steps():
            if full == start:
                break
            with self._autocast(ref, block):
                if name is None:
                    x, shortcut = block.enter(x, batch, torch.float32)
                else:
                    s = self._style(styles, full, batch)
                    x, img, shortcut = block.run_layer(name, x, img, shortcut, s, noise_mode, fused)
        return SynthesisState(start, x, img, shortcut, noise_mode)

    def synthesis_suffix(self, state: SynthesisState, styles: Mapping[str, torch.Tensor],
                         fused_modconv: bool | None = None) -> torch.Tensor:
        """Run `state.start` and every later layer with the given styles
        (earlier layers' styles are not needed) → images."""
        batch = state.batch_size
        start_pos = self._layer_position(state.start)
        self._batch_of(styles, self.style_layers[start_pos:], expected=batch)
        fused = self._fused(state.x, fused_modconv)
        x, img, shortcut = state.x, state.img, state.shortcut
        running = False
        for block, name, full in self._steps():
            if full == state.start:
                running = True
            if not running:
                continue
            with self._autocast(state.x, block):
                if name is None:
                    x, shortcut = block.enter(x, batch, torch.float32)
                else:
                    s = self._style(styles, full, batch)
                    x, img, shortcut = block.run_layer(name, x, img, shortcut, s, state.noise_mode, fused)
        return img.to(torch.float32)

    # -- helpers -------------------------------------------------------------

    def _steps(self) -> Iterator[tuple[SynthesisBlock, str | None, str | None]]:
        """Flat execution plan: (block, None, None) enters a block,
        (block, 'conv0', 'b8.conv0') runs a styled layer."""
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            yield block, None, None
            for name in block.layer_names:
                yield block, name, f"b{res}.{name}"

    def _module(self, name: str) -> torch.nn.Module:
        block, layer = name.split(".")
        return getattr(getattr(self, block), layer)

    def _layer_position(self, name: str) -> int:
        for i, sl in enumerate(self.style_layers):
            if sl.name == name:
                return i
        raise KeyError(f"unknown style layer {name!r}; expected one of {[sl.name for sl in self.style_layers]}")

    def _style(self, styles: Mapping[str, torch.Tensor], name: str, batch: int) -> torch.Tensor:
        s = styles[name]
        assert_shape(s, [batch, self._module(name).in_channels])
        return s.to(torch.float32)

    def _batch_of(self, styles: Mapping[str, torch.Tensor], needed: list[StyleLayer],
                  expected: int | None = None) -> int:
        missing = [sl.name for sl in needed if sl.name not in styles]
        if missing:
            raise KeyError(f"styles missing for layers {missing}")
        sizes = {int(styles[sl.name].shape[0]) for sl in needed}
        if expected is not None:
            sizes.add(expected)
        if len(sizes) != 1:
            raise ValueError(f"inconsistent batch sizes in styles/state: {sorted(sizes)}")
        return sizes.pop()

    def _fused(self, like: torch.Tensor, fused_modconv: bool | None) -> bool | None:
        """The caller's choice, else this network's, else the device's (None: per layer)."""
        if fused_modconv is None:
            fused_modconv = self.fused_modconv
        if fused_modconv is None:
            fused_modconv = choose_fused_modconv(like, self.training, self.precision)
        return fused_modconv

    def _autocast(self, like: torch.Tensor, block: SynthesisBlock):
        """Autocast for `block` under `precision`: only from `reduced_resolution` up, weights
        stay float32 (autocast casts them per op) and the image sum stays float32."""
        if block.resolution < self.reduced_resolution:
            return contextlib.nullcontext()
        return autocast(like.device.type, self.precision)

    @staticmethod
    def _check_noise_mode(noise_mode: str) -> None:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


class StyleSpaceAccess:
    """StyleSpace of a generator whose `synthesis` lists its `style_layers` and maps ws to
    per-layer `styles` (StyleGAN2's and StyleGAN3's alike)."""

    synthesis: torch.nn.Module
    # An `iceaudit.compiling.Compiler` while an audit runs with --compile: synthesis from styles,
    # prefix and suffix then run compiled (calls without gradients); None: eager.
    compiler = None

    def _synthesis_call(self, name: str):
        """`self.synthesis.<name>`, compiled when a compiler is set."""
        if self.compiler is None:
            return getattr(self.synthesis, name)
        return self.compiler.wrap(self.synthesis, name, f"generator.{name}")

    @property
    def style_layers(self) -> list[StyleLayer]:
        return list(self.synthesis.style_layers)

    @property
    def style_dim(self) -> int:
        """Length of a packed style vector (sum of channels over style layers)."""
        return sum(sl.channels for sl in self.synthesis.style_layers)

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """ws [N, num_ws, w_dim] → {layer name: styles [N, C]} in synthesis order."""
        return self.synthesis.styles(ws)

    def pack_styles(self, styles: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """{name: [N, C]} → [N, style_dim], layers concatenated in synthesis order."""
        return torch.cat([styles[sl.name] for sl in self.synthesis.style_layers], dim=1)

    def unpack_styles(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inverse of pack_styles: [N, style_dim] → {name: [N, C]}."""
        assert_shape(vec, [None, self.style_dim])
        chunks = torch.split(vec, [sl.channels for sl in self.synthesis.style_layers], dim=1)
        return {sl.name: chunk for sl, chunk in zip(self.synthesis.style_layers, chunks)}


class Generator(StyleSpaceAccess, torch.nn.Module):
    """z → w (mapping) → images (synthesis), with StyleSpace and partial synthesis.

    Numbers match NVlabs stylegan2-ada-pytorch in float32 with
    ``force_fp32=True``; `precision` ('fp32' default, 'fp16', 'bf16') runs the blocks the
    official code runs in fp16 (the top `num_fp16_res` resolutions; the top 4 when the file
    says 0) under torch.autocast in that type, the lower blocks in float32.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict = {}, synthesis_kwargs: dict = {}):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs),
                                synthesis_kwargs=dict(synthesis_kwargs))
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                          img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const", *,
                truncation_psi: float | None = None, **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, psi=psi if truncation_psi is None else truncation_psi,
                          truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)

    # -- precision ---------------------------------------------------------------

    @property
    def precision(self) -> str:
        return self.synthesis.precision

    @precision.setter
    def precision(self, value: str) -> None:
        self.synthesis.precision = check_precision(value)

    # -- StyleSpace (style_layers, styles, pack/unpack: StyleSpaceAccess) ------------

    def synthesis_from_styles(self, styles: Mapping[str, torch.Tensor], noise_mode: str = "const",
                              fused_modconv: bool | None = None) -> torch.Tensor:
        return self._synthesis_call("synthesis_from_styles")(styles, noise_mode=noise_mode, fused_modconv=fused_modconv)

    def synthesis_prefix(self, styles: Mapping[str, torch.Tensor], start: str, noise_mode: str = "const",
                         fused_modconv: bool | None = None) -> SynthesisState:
        return self._synthesis_call("synthesis_prefix")(styles, start, noise_mode=noise_mode,
                                                        fused_modconv=fused_modconv)

    def synthesis_suffix(self, state: SynthesisState, styles: Mapping[str, torch.Tensor],
                         fused_modconv: bool | None = None) -> torch.Tensor:
        return self._synthesis_call("synthesis_suffix")(state, styles, fused_modconv=fused_modconv)

    # -- identity ----------------------------------------------------------------

    def fingerprint(self) -> str:
        """sha256 (hex) of the canonical weights; see `canonical_fingerprint`."""
        return canonical_fingerprint(self)


# ----------------------------------------------------------------------------
# Fingerprint

# Configuration that changes the arithmetic without changing any tensor.
_FINGERPRINT_CONFIG_KEYS = ("architecture", "conv_clamp")


def canonical_fingerprint(G: Generator) -> str:
    """sha256 over a canonical serialisation of the generator.

    Hashed, in this order:
    1. b"iceaudit-generator-v1\\n" and a JSON line with the arithmetic config
       that no tensor records: z_dim, c_dim, w_dim, img_resolution,
       img_channels, synthesis architecture and conv_clamp, mapping
       lr_multiplier (defaults filled in; sorted keys, no spaces).
    2. every state-dict entry except the FIR `resample_filter` buffers (fixed
       constants derived from the config, not weights), sorted by key: a line
       "key|shape" (shape as comma-separated ints) then the tensor's values as
       float32 little-endian bytes, C order.
    Trainable weights, `noise_const` and `w_avg` are included (they change the
    output). Independent of device, dtype of storage and of the loader.
    """
    syn = G.synthesis
    block = getattr(syn, f"b{syn.block_resolutions[-1]}")
    config = dict(
        z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, img_resolution=G.img_resolution,
        img_channels=G.img_channels, architecture=block.architecture,
        conv_clamp=block.conv1.conv_clamp,
        mapping_lr_multiplier=float(G.mapping.fc0.bias_gain),
    )
    return hash_weights(b"iceaudit-generator-v1\n", config, G.state_dict(), derived=("resample_filter",))


def hash_weights(header: bytes, config: dict, state: Mapping[str, torch.Tensor], derived: tuple[str, ...]) -> str:
    """sha256 of `header`, the config as one sorted compact JSON line, then every state entry
    whose key ends in none of `derived`, sorted by key: "key|shape" and its float32
    little-endian bytes (each generator family's `fingerprint`)."""
    h = hashlib.sha256()
    h.update(header)
    h.update(json.dumps(config, sort_keys=True, separators=(",", ":"), default=float).encode() + b"\n")
    for key in sorted(state):
        if key.endswith(derived):
            continue
        t = state[key].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{key}|{','.join(str(s) for s in t.shape)}\n".encode())
        h.update(t.numpy().astype("<f4", copy=False).tobytes())
    return h.hexdigest()
