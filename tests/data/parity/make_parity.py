"""Produce the parity fixtures in this folder with the OFFICIAL implementation.

Usage (see README.md in this folder):
    python tests/data/parity/make_parity.py --official /tmp/sg2ada --out tests/data/parity

`--official` is a checkout of NVlabs/stylegan2-ada-pytorch (not part of this
repository); its modules are imported from there. Runs on CPU, where the
official custom ops use their reference PyTorch paths. This script only
builds networks and records their outputs; no official code is copied.

For each config below it writes
    <name>.json                 Generator init kwargs (as the official `_init_kwargs`)
    <name>.weights.safetensors  the official state dict (official keys)
    <name>.outputs.safetensors  z, c, ws (psi 0.7; psi 0.5 with cutoff 2),
                                per-layer styles (affine outputs), and images
                                (noise_mode='const', force_fp32=True), with the
                                official default fused modulated conv and non-fused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

CONFIGS = {
    # res 32, skip, 2 mapping layers (the ADA-trained default depth)
    "skip32_map2": dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3,
                        mapping_kwargs=dict(num_layers=2),
                        synthesis_kwargs=dict(channel_base=256, channel_max=32)),
    # res 64, skip, 8 mapping layers, conv_clamp 256 (the official training default)
    "skip64_map8_clamp256": dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=64, img_channels=3,
                                 mapping_kwargs=dict(num_layers=8),
                                 synthesis_kwargs=dict(channel_base=512, channel_max=32, conv_clamp=256)),
    # res 32, resnet, conditional (c_dim 4), a clamp small enough to engage
    "resnet32_cond_clamp": dict(z_dim=32, c_dim=4, w_dim=32, img_resolution=32, img_channels=3,
                                mapping_kwargs=dict(num_layers=3),
                                synthesis_kwargs=dict(architecture="resnet", channel_base=256,
                                                      channel_max=32, conv_clamp=1.5)),
    # res 16, orig
    "orig16": dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3,
                   mapping_kwargs=dict(num_layers=2),
                   synthesis_kwargs=dict(architecture="orig", channel_base=128, channel_max=32)),
}


def randomize(G: torch.nn.Module, seed: int) -> None:
    """Fresh official init leaves noise strengths and biases at 0 and w_avg at 0,
    which would hide their arithmetic: give every one of them random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
        G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=gen))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--out", default=str(Path(__file__).parent))
    args = ap.parse_args()
    sys.path.insert(0, args.official)
    from training.networks import Generator  # official

    out = Path(args.out)
    torch.set_num_threads(1)
    for i, (name, kwargs) in enumerate(CONFIGS.items()):
        torch.manual_seed(1000 + i)
        G = Generator(**kwargs).eval()
        randomize(G, 2000 + i)

        gen = torch.Generator().manual_seed(3000 + i)
        z = torch.randn([2, G.z_dim], generator=gen)
        c = torch.zeros([2, G.c_dim])
        if G.c_dim:
            c[torch.arange(2), torch.arange(2) % G.c_dim] = 1

        styles: dict[str, torch.Tensor] = {}
        hooks = []
        for mod_name, mod in G.synthesis.named_modules():
            if mod_name.endswith(".affine"):
                layer = mod_name[: -len(".affine")]
                hooks.append(mod.register_forward_hook(
                    lambda m, inp, outp, layer=layer: styles.__setitem__(layer, outp.detach().clone())))

        with torch.no_grad():
            ws = G.mapping(z, c, truncation_psi=0.7)
            ws_cut = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
            img = G.synthesis(ws, noise_mode="const", force_fp32=True)  # fused (official eval default)
            style_snapshot = dict(styles)
            img_nonfused = G.synthesis(ws, noise_mode="const", force_fp32=True, fused_modconv=False)
            img_nonoise = G.synthesis(ws, noise_mode="none", force_fp32=True)
        for h in hooks:
            h.remove()

        tensors = {"z": z, "c": c, "ws": ws, "ws_psi0.5_cutoff2": ws_cut, "img": img,
                   "img_nonfused": img_nonfused, "img_noise_none": img_nonoise}
        tensors.update({f"styles.{k}": v for k, v in style_snapshot.items()})
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / f"{name}.outputs.safetensors"))
        save_file({k: v.detach().contiguous() for k, v in G.state_dict().items()},
                  str(out / f"{name}.weights.safetensors"))
        (out / f"{name}.json").write_text(json.dumps(kwargs, indent=2, sort_keys=True) + "\n")
        print(f"{name}: num_ws={G.num_ws} img max |x|={img.abs().max():.3f} layers={list(style_snapshot)}")


if __name__ == "__main__":
    main()
