"""Build a `Generator` from constructor kwargs and an official-layout state dict.

Every loader ends here, so every format reports a bad checkpoint the same way:
unusable kwargs, missing tensors, unexpected tensors and mis-shaped tensors
each give one `UserError` naming the first few offending keys.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from iceaudit.errors import UserError
from iceaudit.stylegan2.networks import Generator


def _few(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def construct_generator(init_kwargs: Mapping[str, Any], source: str = "",
                        network: Callable[..., torch.nn.Module] = Generator, kind: str = "StyleGAN2") -> Any:
    """`network(**init_kwargs)`, with constructor failures as a UserError."""
    if not isinstance(init_kwargs, Mapping):
        raise UserError(f"{source}: generator config is not a mapping")
    try:
        return network(**dict(init_kwargs))
    except (TypeError, ValueError, AssertionError, KeyError, RuntimeError, OverflowError, RecursionError,
            MemoryError, ZeroDivisionError) as exc:
        raise UserError(f"{source}: cannot build a {kind} generator from its config ({exc})") from exc


def build_generator(init_kwargs: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                    source: str = "", device: Any = "cpu", *, network: Callable[..., torch.nn.Module] = Generator,
                    kind: str = "StyleGAN2", derived: tuple[str, ...] = ("resample_filter",)) -> Any:
    """A generator in eval mode on `device` with exactly `state_dict`'s tensors.

    Args:
        init_kwargs: the constructor's keyword arguments (an official pickle's).
        state_dict: must hold every key of `network(**init_kwargs).state_dict()` with the
            same shape, except buffers ending in one of `derived` (FIR filters: constants of
            the config), which may be absent.
        source: the file, for messages.
        device: where the generator goes.
        network, kind: the generator class (StyleGAN2's or StyleGAN3's) and its name.
    """
    G = construct_generator(init_kwargs, source, network, kind)
    expected = G.state_dict()
    given = dict(state_dict)
    for key, value in given.items():
        if not isinstance(value, torch.Tensor):
            raise UserError(f"{source}: {key} is a {type(value).__name__}, not a tensor")
    missing = [k for k in expected if k not in given and not k.endswith(derived)]
    unexpected = [k for k in given if k not in expected]
    misshaped = [f"{k} {tuple(given[k].shape)} (expected {tuple(expected[k].shape)})"
                 for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    if missing:
        raise UserError(f"{source}: the checkpoint lacks tensors the generator needs: {_few(missing)}")
    if misshaped:
        raise UserError(f"{source}: tensors with the wrong shape for this generator config: {_few(misshaped, 3)}")
    if unexpected:
        raise UserError(f"{source}: the checkpoint has tensors this generator config does not use: {_few(unexpected)}")
    for key, value in given.items():
        if not value.dtype.is_floating_point:
            raise UserError(f"{source}: tensor {key} has dtype {value.dtype}, expected floating point")
        if not torch.isfinite(value).all():
            raise UserError(f"{source}: tensor {key} holds NaN or infinite values")
    merged = {k: given.get(k, v) for k, v in expected.items()}
    G.load_state_dict({k: v.to(torch.float32) for k, v in merged.items()}, strict=True)
    return G.eval().requires_grad_(False).to(device)
