"""StyleGAN3 (alias-free) generator in plain PyTorch, as in Karras et al. 2021.

Reads like the paper: Fourier-feature input (rotated and shifted by a learned transform of
w), then `num_layers` modulated convolutions whose non-linearity is *filtered*: upsample by
`up` (Kaiser low-pass), bias, leaky ReLU, clamp, low-pass and downsample by `down` to the
layer's sampling rate; cutoffs and stopbands follow a geometric progression from
`first_cutoff` to the image's Nyquist rate, the last `num_critical` layers critically
sampled, a final ToRGB, the image scaled by `output_scale`. Config-T uses 3x3 convolutions
and separable filters, config-R 1x1 convolutions and radially symmetric (jinc) filters for
the non-critical layers.

Numbers match NVlabs/stylegan3 (`training/networks_stylegan3.py`) in float32 on CPU with
its reference ops (tests/test_stylegan3_parity.py). The state dict uses the official keys,
so an official pickle's `G_ema` loads by name. Beyond the official forward pass the
generator offers what iceaudit's audit and bank use of a StyleGAN2: StyleSpace (`styles`,
`style_layers`; the Fourier input's 4 transform parameters are the style of layer
`input`), partial synthesis (`synthesis_prefix` / `synthesis_suffix`) and a fingerprint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch

from iceaudit.stylegan2.networks import (FullyConnectedLayer, MappingNetwork, StyleLayer, StyleSpaceAccess,
                                        hash_weights)
from iceaudit.stylegan2.ops import assert_shape, bias_act, upfirdn2d


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int = 0, input_gain: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN3's modulated convolution: weights and styles pre-normalised, modulated per
    sample, demodulated, inputs scaled by `input_gain`; one grouped convolution."""
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    assert_shape(x, [batch, in_ch, None, None])
    assert_shape(styles, [batch, in_ch])
    w = weight
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = w.unsqueeze(0) * styles[:, None, :, None, None]  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    if input_gain is not None:
        w = w * input_gain.expand(batch, in_ch)[:, None, :, None, None]
    x = torch.nn.functional.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, in_ch, kh, kw).to(x.dtype),
                                   padding=padding, groups=batch)
    return x.reshape(batch, -1, *x.shape[2:])


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor, up: int,
                   down: int, padding: list[int], gain: float, slope: float, clamp: float | None) -> torch.Tensor:
    """Bias, upsample by `up` through `fu`, leaky ReLU with gain and clamp, filter by `fd` and
    keep every `down`-th sample: the alias-free non-linearity."""
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down)


def lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> torch.Tensor | None:
    """Kaiser-windowed low-pass FIR: separable (1-D taps) or radially symmetric (2-D, jinc)."""
    import scipy.signal
    import scipy.special

    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    t = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(t, t))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


class SynthesisInput(torch.nn.Module):
    """Fourier features of a fixed frequency set, rotated and translated by w's affine."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth  # uniform in a disc of this radius
        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # identity transform at init: (cos, sin, tx, ty) = (1, 0, 0, 0)
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))  # the user's inverse transform of the image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def forward_styles(self, t: torch.Tensor) -> torch.Tensor:
        """Features [N, channels, size, size] from the affine's output t = (r_c, r_s, t_x, t_y)."""
        n = t.shape[0]
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rot = torch.eye(3, device=t.device).repeat(n, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, device=t.device).repeat(n, 1, 1)
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        transform = rot @ shift @ self.transform[None]
        phases = self.phases[None] + (self.freqs[None] @ transform[:, :2, 2:]).squeeze(2)
        freqs = self.freqs[None] @ transform[:, :2, :2]
        # frequencies a user transform pushes out of band fade out instead of aliasing
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=t.device)
        theta[0, 0] = theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grid = torch.nn.functional.affine_grid(theta[None], [1, 1, self.size, self.size], align_corners=False)
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1)[:, None, None]).squeeze(3)  # [N, H, W, C]
        x = torch.sin((x + phases[:, None, None]) * (2 * np.pi)) * amplitudes[:, None, None]
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        x = x.permute(0, 3, 1, 2)
        assert_shape(x, [n, self.channels, self.size, self.size])
        return x


class SynthesisLayer(torch.nn.Module):
    """Modulated convolution, then the filtered leaky ReLU from the input's sampling rate to
    the output's (through `tmp_sampling_rate`); the last one is the 1x1 ToRGB, linear."""

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, in_channels: int,
                 out_channels: int, in_size: int, out_size: int, in_sampling_rate: float, out_sampling_rate: float,
                 in_cutoff: float, out_cutoff: float, in_half_width: float, out_half_width: float,
                 conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                 use_radial_filters: bool = False, conv_clamp: float | None = 256, **_unused) -> None:
        super().__init__()
        self.is_torgb, self.in_channels, self.out_channels = is_torgb, in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        tmp_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.up_factor = int(np.rint(tmp_rate / in_sampling_rate))
        self.down_factor = int(np.rint(tmp_rate / out_sampling_rate))
        assert in_sampling_rate * self.up_factor == tmp_rate and out_sampling_rate * self.down_factor == tmp_rate
        up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.register_buffer("up_filter", lowpass_filter(up_taps, in_cutoff, in_half_width * 2, tmp_rate))
        self.register_buffer("down_filter", lowpass_filter(
            down_taps, out_cutoff, out_half_width * 2, tmp_rate, radial=use_radial_filters and not is_critically_sampled))
        # pad so that output sample k sits where the symmetric interpretation puts it (paper, App. C.3)
        total = (self.out_size - 1) * self.down_factor + 1
        total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        total += up_taps + down_taps - 2
        lo = (total + self.up_factor) // 2
        self.padding = [int(lo), int(total - lo), int(lo), int(total - lo)]

    def forward_styles(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, self.in_size, self.in_size])
        if self.is_torgb:
            styles = styles / np.sqrt(self.in_channels * self.conv_kernel ** 2)
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb, padding=self.conv_kernel - 1,
                             input_gain=self.magnitude_ema.rsqrt())
        x = filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(x.dtype), self.up_factor,
                           self.down_factor, self.padding, gain=1.0 if self.is_torgb else float(np.sqrt(2)),
                           slope=1.0 if self.is_torgb else 0.2, clamp=self.conv_clamp)
        assert_shape(x, [None, self.out_channels, self.out_size, self.out_size])
        return x


@dataclass
class SynthesisState:
    """Features entering layer `start` (None when `start` is the Fourier input)."""

    start: str
    x: torch.Tensor | None
    batch: int

    @property
    def batch_size(self) -> int:
        return self.batch

    def _map(self, fn, batch: int) -> "SynthesisState":
        return SynthesisState(self.start, None if self.x is None else fn(self.x), batch)

    def repeat_interleave(self, repeats: int) -> "SynthesisState":
        return self._map(lambda t: t.repeat_interleave(repeats, dim=0), self.batch * repeats)

    def index_select(self, index: torch.Tensor) -> "SynthesisState":
        return self._map(lambda t: t.index_select(0, index.to(t.device)), int(index.numel()))

    def to(self, *args, **kwargs) -> "SynthesisState":
        return self._map(lambda t: t.to(*args, **kwargs), self.batch)


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> images; ws[:, 0] drives the input, ws[:, i + 1] layer i."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, **layer_kwargs) -> None:
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = num_layers + 2
        self.output_scale = output_scale
        self.config = dict(channel_base=channel_base, channel_max=channel_max, num_layers=num_layers,
                           num_critical=num_critical, first_cutoff=first_cutoff, first_stopband=first_stopband,
                           last_stopband_rel=last_stopband_rel, margin_size=margin_size, output_scale=output_scale,
                           **{k: v for k, v in layer_kwargs.items() if k != "magnitude_ema_beta"})
        last_cutoff = img_resolution / 2
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_cutoff * last_stopband_rel / first_stopband) ** exponents
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        sizes = rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels
        self.input = SynthesisInput(w_dim, int(channels[0]), int(sizes[0]), rates[0], cutoffs[0])
        self.layer_names: list[str] = []
        layers = [StyleLayer("input", 4, 0, int(sizes[0]), "input")]
        for i in range(num_layers + 1):
            prev = max(i - 1, 0)
            layer = SynthesisLayer(
                w_dim, is_torgb=i == num_layers, is_critically_sampled=i >= num_layers - num_critical,
                in_channels=int(channels[prev]), out_channels=int(channels[i]), in_size=int(sizes[prev]),
                out_size=int(sizes[i]), in_sampling_rate=int(rates[prev]), out_sampling_rate=int(rates[i]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[i], in_half_width=half_widths[prev],
                out_half_width=half_widths[i], **layer_kwargs)
            name = f"L{i}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)
            layers.append(StyleLayer(name, layer.in_channels, i + 1, layer.out_size,
                                     "torgb" if i == num_layers else "conv"))
        self.style_layers = layers

    def forward(self, ws: torch.Tensor, **_ignored) -> torch.Tensor:
        return self.synthesis_from_styles(self.styles(ws))

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        return {sl.name: self._module(sl.name).affine(ws[:, sl.ws_index]) for sl in self.style_layers}

    def synthesis_from_styles(self, styles: Mapping[str, torch.Tensor], **_ignored) -> torch.Tensor:
        return self.synthesis_suffix(self.synthesis_prefix(styles, "input"), styles)

    def synthesis_prefix(self, styles: Mapping[str, torch.Tensor], start: str, **_ignored) -> SynthesisState:
        """Run every layer before `start` once and keep the features entering it."""
        stop = self._position(start)
        batch = int(styles["input"].shape[0]) if stop == 0 else int(styles[self.style_layers[0].name].shape[0])
        x = None
        for i, (name, module) in enumerate(self._layers()):
            if i == stop:
                break
            x = module.forward_styles(styles[name]) if x is None else module.forward_styles(x, styles[name])
        return SynthesisState(start, x, batch)

    def synthesis_suffix(self, state: SynthesisState, styles: Mapping[str, torch.Tensor], **_ignored) -> torch.Tensor:
        """Run `state.start` and every later layer with `styles` -> images [N, C, R, R]."""
        start = self._position(state.start)
        x = state.x
        for i, (name, module) in enumerate(self._layers()):
            if i < start:
                continue
            s = styles[name].to(torch.float32)
            assert_shape(s, [state.batch, self.style_layers[i].channels])
            x = module.forward_styles(s) if i == 0 else module.forward_styles(x, s)
        x = x * self.output_scale if self.output_scale != 1 else x
        assert_shape(x, [state.batch, self.img_channels, self.img_resolution, self.img_resolution])
        return x.to(torch.float32)

    def _layers(self) -> Iterator[tuple[str, torch.nn.Module]]:
        yield "input", self.input
        for name in self.layer_names:
            yield name, getattr(self, name)

    def _module(self, name: str) -> torch.nn.Module:
        return self.input if name == "input" else getattr(self, name)

    def _position(self, name: str) -> int:
        for i, sl in enumerate(self.style_layers):
            if sl.name == name:
                return i
        raise KeyError(f"unknown style layer {name!r}; expected one of {[sl.name for sl in self.style_layers]}")


class Generator(StyleSpaceAccess, torch.nn.Module):
    """z -> w (mapping, as StyleGAN2's with 2 layers by default) -> alias-free synthesis."""

    architecture = "stylegan3"

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, **synthesis_kwargs) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        mapping_kwargs = {"num_layers": 2, **dict(mapping_kwargs or {})}
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=mapping_kwargs, **synthesis_kwargs)
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        mapping_kwargs.setdefault("w_avg_beta", 0.998)
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0,
                truncation_cutoff: int | None = None, *, truncation_psi: float | None = None, **_ignored) -> torch.Tensor:
        ws = self.mapping(z, c, psi=psi if truncation_psi is None else truncation_psi,
                          truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws)

    def synthesis_from_styles(self, styles: Mapping[str, torch.Tensor], **kwargs) -> torch.Tensor:
        return self._synthesis_call("synthesis_from_styles")(styles)

    def synthesis_prefix(self, styles: Mapping[str, torch.Tensor], start: str, **kwargs) -> SynthesisState:
        return self._synthesis_call("synthesis_prefix")(styles, start)

    def synthesis_suffix(self, state: SynthesisState, styles: Mapping[str, torch.Tensor], **kwargs) -> torch.Tensor:
        return self._synthesis_call("synthesis_suffix")(state, styles)

    def fingerprint(self) -> str:
        """sha256 over the arithmetic config and every state tensor but the filters (derived
        from the config), sorted by key, as float32 little-endian bytes."""
        config = dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, img_resolution=self.img_resolution,
                      img_channels=self.img_channels, synthesis=self.synthesis.config,
                      mapping_lr_multiplier=float(self.mapping.fc0.bias_gain))
        return hash_weights(b"iceaudit-generator-stylegan3-v1\n", config, self.state_dict(),
                            derived=("up_filter", "down_filter"))
