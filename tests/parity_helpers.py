"""Parity fixtures made with the official NVlabs code (tests/data/parity*/): a case's network
built from its init kwargs with the official weights, its reference outputs, and the closeness
rule both parity suites use."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

REL_TOL = 1e-3  # max abs difference, as a share of the reference tensor's largest magnitude


def case_names(data: Path) -> list[str]:
    return sorted(p.name[: -len(".json")] for p in data.glob("*.json"))


def load_case(data: Path, name: str, network: Callable[..., torch.nn.Module]):
    """(network with the case's official weights, in eval mode; the reference outputs)."""
    G = network(**json.loads((data / f"{name}.json").read_text())).eval()
    G.load_state_dict(load_file(str(data / f"{name}.weights.safetensors")), strict=True)
    return G, load_file(str(data / f"{name}.outputs.safetensors"))


def assert_close_rel(ours: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert ours.shape == ref.shape, what
    err = (ours - ref).abs().max().item()
    scale = ref.abs().max().item()
    assert err <= REL_TOL * scale, f"{what}: max abs diff {err:.3g} > {REL_TOL} x {scale:.3g}"
