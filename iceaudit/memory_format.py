"""Memory format of the classifier during an audit (`--memory-format`).

channels_last (NHWC) stores a pixel's channels side by side. `auto` takes channels_last on
CUDA, where cuDNN's tensor-core convolutions prefer it (not measured by this project: no GPU
was lent), and contiguous (NCHW) on a CPU. On this project's 2-core CPU (BENCHMARKS.md,
"Compile and channels_last") channels_last made the ResNet-50-shaped classifier ×1.08–1.13
faster eager, but the classifier is ~3 % of an audit's arithmetic at 1024 px (4 of ~159 GFLOP
per face), and a model that flattens with .view() fails in it; so CPU audits keep the layout
they always had. The generator stays contiguous on every device: channels_last measured
×0.82–0.92 (slower) for it eager, and no faster compiled. The numbers do not depend on the
format (the same operations, summed in another order: float rounding).
"""
from __future__ import annotations

import torch

MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
_TORCH = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def check_memory_format(value: str) -> str:
    """`value` if it names a memory format, else ValueError naming the choices."""
    if value not in MEMORY_FORMATS:
        raise ValueError(f"memory format must be one of {', '.join(MEMORY_FORMATS)}, got {value!r}")
    return value


def resolve_memory_format(value: str, device: torch.device) -> str:
    """"channels_last" or "contiguous" for the classifier on `device`.

    Args:
        value: a member of MEMORY_FORMATS; "auto" chooses by device.
        device: where the classifier runs.
    """
    if check_memory_format(value) != "auto":
        return value
    return "channels_last" if device.type == "cuda" else "contiguous"


def to_memory_format(module: torch.nn.Module, value: str) -> None:
    """Convert `module`'s 4-D parameters and buffers to `value` ("channels_last" or "contiguous")
    in place (a TorchScript module too)."""
    module.to(memory_format=_TORCH[value])
