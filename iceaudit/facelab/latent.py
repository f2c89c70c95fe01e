"""The fixed latent map phi: z -> factors that the demo generator learns.

    phi(z) = prior(A z^),   z^ = z / rms(z),   z ~ N(0, I_512),   A in R^{19 x 512}

A has orthonormal rows (QR of a Gaussian matrix drawn from numpy's PCG64
with seed `LATENT_SEED`, signs fixed so that diag(R) > 0). z is first
normalised to unit second moment, as StyleGAN2's mapping network does, so a
generator can learn phi exactly. Hence u = A z^ is N(0, I_19) up to the
~3 % spread of rms(z) and `factors.from_normal` (normal CDF, then each
factor's prior) sends it onto the FaceLab prior: phi(z) for z ~ N(0, I) has the
same distribution as `sample_factors`. Every factor depends on all 512
latent coordinates and every coordinate moves all 19 factors, so no latent
axis is a factor; the 493 directions orthogonal to A's rows change nothing.

Only the ground truth may use this module: the generator trainer, the
oracle, tests, benchmarks and docs. The audit must never import it (it would
be reading the answer key).
"""
from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np
import torch

from iceaudit.errors import UserError
from iceaudit.facelab.factors import FACTORS, NUM_FACTORS, check_factors, check_seed, from_normal

Z_DIM = 512
LATENT_SEED = 20_261_123


@lru_cache(maxsize=1)
def _projection_np() -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(LATENT_SEED))
    gauss = rng.standard_normal((Z_DIM, NUM_FACTORS))
    q, r = np.linalg.qr(gauss)
    q = q * np.sign(np.diag(r))[None, :]
    return np.ascontiguousarray(q.T)  # [19, 512], orthonormal rows


def projection() -> torch.Tensor:
    """A: float32 [19, 512] with orthonormal rows (a copy)."""
    return torch.from_numpy(_projection_np().astype(np.float32))


def projection_digest() -> str:
    """sha256 of A rounded to 6 decimals: pins the map across platforms."""
    return hashlib.sha256(np.round(_projection_np(), 6).tobytes()).hexdigest()


def _check_z(z: torch.Tensor) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != Z_DIM:
        shape = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise UserError(f"latents must be a tensor of shape [N, {Z_DIM}], got {shape}")
    return z


def normalise_z(z: torch.Tensor) -> torch.Tensor:
    """z^ = z / rms(z) (float32, CPU): what phi projects."""
    z = _check_z(z).detach().to("cpu", torch.float32)
    # Like StyleGAN2's mapping network, phi sees z only after normalising its second
    # moment, so a generator can reproduce phi exactly (it never sees |z|).
    return z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)


def normal_coords(z: torch.Tensor) -> torch.Tensor:
    """u = A z^ [N, 19]: the factors' normal-space coordinates, phi(z) = from_normal(u)."""
    return normalise_z(z) @ projection().T


def phi(z: torch.Tensor) -> torch.Tensor:
    """Factors [N, 19] (`FACTOR_NAMES` order) for latents z [N, 512]; any device, float32 out on CPU."""
    return from_normal(normal_coords(z))


def sample_z(n: int, seed: int) -> torch.Tensor:
    """z ~ N(0, I) [n, 512], deterministic in `seed` (torch's CPU generator)."""
    seed = check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(int(n), Z_DIM, generator=gen)


def z_for_factors(factors: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Latents z [N, 512] with phi(z) == factors (to float precision).

    The part of z orthogonal to A's rows is drawn from N(0, I) with `seed`;
    a gated factor at its 'off' value is given a random normal draw below its
    gate. Used by tests and by the oracle when it checks a generator.
    """
    fv = check_factors(factors).to(torch.float64)
    gen = torch.Generator().manual_seed(check_seed(seed))
    n = fv.shape[0]
    q = torch.empty(n, NUM_FACTORS, dtype=torch.float64)
    for i, f in enumerate(FACTORS):
        t = (fv[:, i] - f.low) / f.span
        if f.prior == "gated":
            # invert smoothstep s = t^2 (3 - 2t) by bisection-free closed form
            s = t.clamp(0, 1)
            x = 0.5 - torch.sin(torch.asin((1 - 2 * s).clamp(-1, 1)) / 3)
            off = torch.rand(n, generator=gen, dtype=torch.float64) * f.gate
            t = torch.where(s <= 0, off, f.gate + f.ramp * x)
            t = torch.where(s >= 1, f.gate + f.ramp + (1 - f.gate - f.ramp) * torch.rand(
                n, generator=gen, dtype=torch.float64), t)
        q[:, i] = t
    q = q.clamp(1e-6, 1 - 1e-6)
    u = math.sqrt(2.0) * torch.erfinv(2 * q - 1)
    a = torch.from_numpy(_projection_np())  # float64
    eps = torch.randn(n, Z_DIM, generator=gen, dtype=torch.float64)
    ortho = eps - (eps @ a.T) @ a
    # Scale the free part so that |z|^2 = Z_DIM: phi's normalisation then leaves z unchanged.
    room = (Z_DIM - u.square().sum(dim=1, keepdim=True)).clamp_min(1.0)
    ortho = ortho * torch.sqrt(room / ortho.square().sum(dim=1, keepdim=True))
    return (ortho + u @ a).to(torch.float32)


def render_z(z: torch.Tensor, resolution: int = 64):
    """render(phi(z)): the images the demo generator is trained to reproduce."""
    from iceaudit.facelab.render import render

    return render(phi(z), resolution)
