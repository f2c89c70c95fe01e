"""Numeric precision of an audit's two networks: `fp32`, or autocast in `bf16` / `fp16`.

Weights stay float32 (autocast casts them per operation, as the official StyleGAN2 code
keeps fp32 master weights), and what leaves a network (images, scores) is float32.
Measured parity against fp32 on the same weights: docs/precision.md.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(value: str) -> str:
    """`value` if it names a precision, else ValueError naming the choices."""
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """torch.autocast on `device_type` in `precision`'s type; nothing for fp32.

    Args:
        device_type: "cpu" or "cuda" (a tensor's ``device.type``).
        precision: a key of PRECISIONS.
    """
    dtype = PRECISIONS[check_precision(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)
