"""Memory format of the classifier during an audit (`--memory-format`).

channels_last (NHWC) stores a pixel's channels side by side; convolution libraries on recent
GPUs (cuDNN with tensor cores) run it faster than NCHW, most of all in bf16/fp16. `auto` takes
channels_last on CUDA and contiguous (NCHW) elsewhere: on this project's CPU, channels_last
measured no faster for the ResNet-50-shaped classifier and slower for the generator
(BENCHMARKS.md, "Compile and channels_last"), so CPU audits keep the layout they always had.
The generator stays contiguous on every device: its modulated convolutions reshape features
per sample, and channels_last measured slower for it. The numbers do not depend on the format
(the same operations, summed in another order: float rounding).
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
