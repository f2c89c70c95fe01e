"""One small real StyleGAN2 (`iceaudit.stylegan2.networks.Generator`) for tests that need the
true architecture at a size the CPU runs in milliseconds."""
from __future__ import annotations

import torch

from iceaudit.stylegan2.networks import Generator


def tiny_generator(seed: int = 0, *, w_dim: int = 64, resolution: int = 16, channel_base: int = 128,
                   channel_max: int = 16, mapping_layers: int = 2, jitter: float = 0.0) -> Generator:
    """A seeded StyleGAN2 in eval mode, z_dim = w_dim, unconditional, RGB.

    Args:
        seed: torch seed of the initial weights (the same seed gives the same generator).
        w_dim: width of z and w; channel_base / channel_max: synthesis widths.
        resolution: output size in pixels (a power of two).
        mapping_layers: depth of the mapping MLP.
        jitter: SD of noise added to every parameter and w_avg after init, so that biases,
            noise strengths and w_avg are not at their zero initial values.
    """
    torch.manual_seed(seed)
    G = Generator(z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3,
                  mapping_kwargs={"num_layers": mapping_layers},
                  synthesis_kwargs={"channel_base": channel_base, "channel_max": channel_max}).eval()
    if jitter:
        with torch.no_grad():
            for t in list(G.parameters()) + [G.mapping.w_avg]:
                t.add_(torch.randn_like(t) * jitter)
    return G
