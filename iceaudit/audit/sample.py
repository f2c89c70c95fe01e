"""Sample faces from seeds, the official way: ``z = RandomState(seed).randn(z_dim)``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from iceaudit.errors import UserError

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


DEFAULT_N_CUDA = 256
DEFAULT_N_CPU = 64


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None -> CUDA when present, else CPU. Refuses a CUDA request without CUDA."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine", hint="Use --device cpu.")
    return dev


def default_n(device: torch.device) -> int:
    return DEFAULT_N_CUDA if device.type == "cuda" else DEFAULT_N_CPU


def seed_to_z(seeds: np.ndarray | list[int], z_dim: int) -> torch.Tensor:
    """[N, z_dim] float32 latents, one per seed (stylegan2-ada-pytorch convention)."""
    return torch.from_numpy(np.stack([np.random.RandomState(int(s)).randn(z_dim) for s in seeds])).float()


@dataclass
class Faces:
    """The audited faces: their seeds and ws (after truncation)."""

    seeds: np.ndarray  # [N] int64
    ws: torch.Tensor  # [N, num_ws, w_dim], on the audit device
    psi: float

    def __len__(self) -> int:
        return len(self.seeds)


@torch.no_grad()
def sample_faces(G: Generator, n: int, seed: int = 0, psi: float = 1.0, device: torch.device | str = "cpu",
                 batch_size: int = 64) -> Faces:
    """Faces for seeds ``seed .. seed + n - 1``, mapped with truncation ``psi``."""
    if n < 2:
        raise UserError(f"--n must be at least 2 faces (got {n}): statistics over faces need several")
    if not 0.0 <= psi <= 1.5:
        raise UserError(f"--psi must be between 0 and 1.5 (got {psi})")
    if seed < 0 or seed + n > 2**32:
        raise UserError(f"--seed must satisfy 0 <= seed and seed + n <= 2^32 (got seed {seed}, n {n})")
    if getattr(G, "c_dim", 0):
        raise UserError(f"the generator is class-conditional (c_dim = {G.c_dim}); the audit needs an "
                        "unconditional face generator (c_dim = 0)")
    seeds = np.arange(seed, seed + n, dtype=np.int64)
    z = seed_to_z(seeds, G.z_dim)
    ws = [G.mapping(z[i:i + batch_size].to(device), None, psi=psi) for i in range(0, n, batch_size)]
    return Faces(seeds=seeds, ws=torch.cat(ws), psi=psi)
