"""Make the StyleGAN3 parity fixtures with the official NVlabs/stylegan3 code (run with the official checkout on PYTHONPATH).

    mkdir -p /tmp/stubs && echo "# stub" > /tmp/stubs/requests.py
    echo "from packaging.version import parse as parse_version" > /tmp/stubs/pkg_resources.py
    PYTHONPATH=/tmp/sg3:/tmp/stubs python tests/data/parity_sg3/make_parity_sg3.py /tmp/sg3 tests/data/parity_sg3

Writes, per config, `<name>.json` (init kwargs), `<name>.weights.safetensors` (the official
state dict) and `<name>.outputs.safetensors` (z, ws, per-layer styles, images). No official
code is copied here: it is imported from the checkout given on the command line.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, sys.argv[1])
from training.networks_stylegan3 import Generator  # noqa: E402  (official, from the checkout)

OUT = Path(sys.argv[2])
CONFIGS = {
    # stylegan3-T (translation equivariant): 3x3 convs, separable Kaiser filters
    "t16": dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                mapping_kwargs=dict(num_layers=2), channel_base=512, channel_max=16, magnitude_ema_beta=0.999),
    # stylegan3-R (rotation equivariant): 1x1 convs, radial filters, conv_clamp engaged
    "r32": dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                mapping_kwargs=dict(num_layers=2), channel_base=1024, channel_max=16, magnitude_ema_beta=0.999,
                conv_kernel=1, use_radial_filters=True, conv_clamp=0.5),
    # fewer layers and a user transform on the Fourier input (rotation + shift)
    "t32_short": dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3,
                      mapping_kwargs=dict(num_layers=3), channel_base=512, channel_max=8, num_layers=6,
                      num_critical=1, margin_size=4),
}


def randomise(G, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
        for name, b in G.named_buffers():
            if name.endswith("magnitude_ema"):
                b.copy_(torch.rand([], generator=g) * 2 + 0.25)
        G.mapping.w_avg.copy_(torch.randn(G.w_dim, generator=g) * 0.5)


for k, (name, kwargs) in enumerate(CONFIGS.items()):
    torch.manual_seed(100 + k)
    G = Generator(**kwargs).eval()
    randomise(G, 200 + k)
    if name == "t32_short":
        a = 0.3
        m = torch.tensor([[np.cos(a), np.sin(a), 0.1], [-np.sin(a), np.cos(a), -0.2], [0, 0, 1]], dtype=torch.float32)
        G.synthesis.input.transform.copy_(m)
    z = torch.from_numpy(np.random.RandomState(k).randn(3, G.z_dim)).float()
    with torch.no_grad():
        ws = G.mapping(z, None, truncation_psi=0.7)
        ws_trunc = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
        styles = {}
        for lname in G.synthesis.layer_names:
            layer = getattr(G.synthesis, lname)
            idx = G.synthesis.layer_names.index(lname) + 1
            styles[f"styles.{lname}"] = layer.affine(ws[:, idx])
        styles["styles.input"] = G.synthesis.input.affine(ws[:, 0])
        img = G.synthesis(ws)
    outputs = {"z": z, "ws": ws, "ws_psi0.5_cutoff2": ws_trunc, "img": img, **styles}
    save_file({k2: v.contiguous() for k2, v in outputs.items()}, str(OUT / f"{name}.outputs.safetensors"))
    state = {k2: v.contiguous() for k2, v in G.state_dict().items()}
    save_file(state, str(OUT / f"{name}.weights.safetensors"))
    (OUT / f"{name}.json").write_text(json.dumps(kwargs, indent=1) + "\n")
    print(name, tuple(img.shape), float(img.abs().max()), len(state), "tensors",
          sum(v.numel() for v in state.values()), "numbers")
