"""Pure-PyTorch StyleGAN2 operators.

These reproduce the arithmetic of the reference (non-CUDA) paths of NVlabs'
stylegan2-ada-pytorch operators step for step — same order of operations,
same gains, same padding and filter-flip conventions — so that a network with
identical weights produces the same numbers (see tests/test_parity.py).
No compiled extensions: everything is `torch.nn.functional`.

Conventions
-----------
* FIR filters are prepared by `setup_filter`: a 1-D tap list becomes its
  normalised outer product (2-D) unless it has 8 or more taps (then it stays
  separable). [1, 3, 3, 1] → a 4×4 kernel summing to 1.
* `upfirdn2d` pads as ``[x_before, x_after, y_before, y_after]`` and convolves
  with the *flipped* filter unless ``flip_filter`` (true convolution).
* `conv2d_resample` with ``up=2`` uses a stride-2 transposed convolution
  followed by FIR filtering, exactly like the reference "fast path".
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]

# --------------------------------------------------------------------------
# Small helpers


def assert_shape(tensor: torch.Tensor, shape: Sequence[int | None]) -> None:
    """Raise AssertionError if `tensor` does not have `shape` (None = any size)."""
    if tensor.ndim != len(shape):
        raise AssertionError(f"wrong number of dimensions: got {tensor.ndim}, expected {len(shape)} ({list(shape)})")
    for idx, (size, ref) in enumerate(zip(tensor.shape, shape)):
        if ref is not None and int(size) != int(ref):
            raise AssertionError(f"wrong size for dimension {idx}: got {int(size)}, expected {int(ref)} (shape {list(tensor.shape)} vs {list(shape)})")


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (the mapping network's input norm)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    assert len(padding) == 4, padding
    return padding[0], padding[1], padding[2], padding[3]


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    if f is None:
        return 1, 1
    assert f.ndim in (1, 2)
    return int(f.shape[-1]), int(f.shape[0])  # (width, height)


# --------------------------------------------------------------------------
# Activation with bias, gain and clamp


ACTIVATIONS: dict[str, tuple[float, float]] = {
    # name: (default alpha, default gain)
    "linear": (0.0, 1.0),
    "relu": (0.0, math.sqrt(2)),
    "lrelu": (0.2, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """y = clamp(act(x + b) * gain, ±clamp). Gain defaults to the activation's
    own (sqrt 2 for (leaky) ReLU, 1 for linear)."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    def_alpha, def_gain = ACTIVATIONS[act]
    alpha = float(def_alpha if alpha is None else alpha)
    gain = float(def_gain if gain is None else gain)
    if b is not None:
        assert b.ndim == 1 and b.shape[0] == x.shape[dim]
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    if act == "lrelu":
        x = F.leaky_relu(x, alpha)
    elif act == "relu":
        x = F.relu(x)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# --------------------------------------------------------------------------
# FIR filtering: upsample, pad, filter, downsample


def setup_filter(f: Sequence[float] | torch.Tensor | None, normalize: bool = True,
                 separable: bool | None = None) -> torch.Tensor:
    """Prepare a FIR filter tensor (float32) from a tap list such as [1, 3, 3, 1]."""
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    assert f.ndim in (0, 1, 2) and f.numel() > 0
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    assert f.ndim == (1 if separable else 2)
    if normalize:
        f = f / f.sum()
    return f


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), FIR-filter, downsample."""
    assert x.ndim == 4
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    assert f.ndim in (1, 2) and f.dtype == torch.float32
    batch, channels, height, width = x.shape
    padx0, padx1, pady0, pady1 = _parse_padding(padding)

    # Zero insertion.
    x = x.reshape([batch, channels, height, 1, width, 1])
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape([batch, channels, height * up, width * up])

    # Pad, then crop where the padding is negative.
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0): x.shape[2] - max(-pady1, 0), max(-padx0, 0): x.shape[3] - max(-padx1, 0)]

    # Depthwise filtering; conv2d correlates, so flip to convolve.
    f = f * (gain ** (f.ndim / 2))
    f = f.to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=channels)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=channels)
        x = F.conv2d(x, f.unsqueeze(3), groups=channels)

    return x[:, :, ::down, ::down]


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, gain: float = 1) -> torch.Tensor:
    """Upsample by `up` with the FIR filter `f`, keeping the image aligned."""
    fw, fh = _filter_size(f)
    padding = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=padding, gain=gain * up * up)


# --------------------------------------------------------------------------
# Convolution with optional upsampling


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int | Sequence[int] = 0,
          groups: int = 1, transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    if not flip_weight:  # conv2d correlates; flip for a true convolution
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
) -> torch.Tensor:
    """2-D convolution, optionally preceded by FIR upsampling (`up` > 1).

    `padding` is relative to the upsampled image. Only what the generator
    needs is implemented (no downsampling).
    """
    assert x.ndim == 4 and w.ndim == 4 and w.dtype == x.dtype
    assert up >= 1 and groups >= 1
    out_channels, in_per_group, kh, kw = (int(s) for s in w.shape)
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2

    # 1×1 kernel with upsampling: convolve at low resolution, then upsample.
    if kw == 1 and kh == 1 and up > 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2)

    # Upsampling: stride-`up` transposed convolution, then FIR filter.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        return upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2)

    # No resampling, symmetric padding: plain conv2d.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


# --------------------------------------------------------------------------
# Modulated convolution (StyleGAN2, section 2.2)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Convolve `x` [N, I, H, W] with `weight` [O, I, k, k] modulated per sample
    by `styles` [N, I]; demodulate so each output map has unit expected norm.

    fused: build per-sample weights and run one grouped convolution.
    non-fused: scale activations by the styles, convolve with the shared
    weight, scale the result by the demodulation coefficients. Same numbers
    up to float rounding; non-fused is faster on CPU and for large batches.
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert_shape(weight, [out_channels, in_channels, kh, kw])
    assert_shape(x, [batch, in_channels, None, None])
    assert_shape(styles, [batch, in_channels])

    # Keep fp16 in range: rescaling is undone by demodulation.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [N, O, I, k, k]
        if demodulate:
            dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
            w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    elif demodulate:
        # sum_{i,k} (s_i W_oik)^2 = sum_i s_i^2 sum_k W_oik^2: the same
        # coefficients without materialising per-sample weights [N, O, I, k, k]
        # (differs from the official order of summation only by rounding).
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            x = torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        elif demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        elif noise is not None:
            x = x + noise.to(x.dtype)
        return x

    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, padding=padding, groups=batch, flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise.to(x.dtype))  # in place: x is this call's own conv output
    return x
