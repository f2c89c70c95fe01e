"""Build a `Generator` from constructor kwargs and an official-layout state dict.

Every loader ends here, so every format reports a bad checkpoint the same way:
unusable kwargs, missing tensors, unexpected tensors and mis-shaped tensors
each give one `UserError` naming the first few offending keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from iceaudit.errors import UserError
from iceaudit.stylegan2.networks import Generator


@dataclass(frozen=True)
class Architecture:
    """A generator family iceaudit builds: its class, its name in messages, and the buffers a
    checkpoint may leave out because the config determines them (FIR filters)."""

    name: str
    network: Callable[[], type[torch.nn.Module]]
    derived: tuple[str, ...]


def _stylegan3() -> type[torch.nn.Module]:
    from iceaudit.stylegan3.networks import Generator as StyleGAN3

    return StyleGAN3


ARCHITECTURES = {
    "stylegan2": Architecture("StyleGAN2", lambda: Generator, ("resample_filter",)),
    "stylegan3": Architecture("StyleGAN3", _stylegan3, ("up_filter", "down_filter")),
}


def architecture_of(G: torch.nn.Module) -> str:
    """The `ARCHITECTURES` key of a built generator."""
    return getattr(G, "architecture", "stylegan2")


def _few(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def construct_generator(init_kwargs: Mapping[str, Any], source: str = "", architecture: str = "stylegan2") -> Any:
    """The `architecture`'s generator built from `init_kwargs`, with constructor failures as a UserError."""
    if architecture not in ARCHITECTURES:
        raise UserError(f"{source}: unknown generator architecture {architecture!r} "
                        f"(iceaudit builds {', '.join(ARCHITECTURES)})")
    arch = ARCHITECTURES[architecture]
    if not isinstance(init_kwargs, Mapping):
        raise UserError(f"{source}: generator config is not a mapping")
    try:
        return arch.network()(**dict(init_kwargs))
    except (TypeError, ValueError, AssertionError, KeyError, RuntimeError, OverflowError, RecursionError,
            MemoryError, ZeroDivisionError) as exc:
        raise UserError(f"{source}: cannot build a {arch.name} generator from its config ({exc})") from exc


def build_generator(init_kwargs: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                    source: str = "", device: Any = "cpu", architecture: str = "stylegan2") -> Any:
    """A generator in eval mode on `device` with exactly `state_dict`'s tensors.

    Args:
        init_kwargs: the constructor's keyword arguments (an official pickle's).
        state_dict: must hold every key of the built generator's state dict with the same
            shape, except the architecture's derived buffers (FIR filters: constants of the
            config), which may be absent.
        source: the file, for messages.
        device: where the generator goes.
        architecture: "stylegan2" or "stylegan3" (`ARCHITECTURES`).
    """
    G = construct_generator(init_kwargs, source, architecture)
    derived = ARCHITECTURES[architecture].derived
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
