"""Make tests/data/rosinality (see README.md). Run against a patched copy in /tmp only: build a tiny rosinality Generator (their code, CPU paths),
save its checkpoint and its own outputs as iceaudit test data."""
import sys, numpy as np, torch
sys.path.insert(0, '/tmp/rosi')  # a patched copy, see README.md
import model as rosi
from safetensors.torch import save_file
OUT = sys.argv[1]  # output directory
rosi.CHANNELS_OVERRIDE = {4: 32, 8: 32, 16: 16}
torch.manual_seed(0)
g = rosi.Generator(size=16, style_dim=32, n_mlp=3).eval()
with torch.no_grad():
    for name, p in g.named_parameters():
        p.add_(torch.randn_like(p) * (0.3 if 'noise' not in name else 0.5))
latent_avg = torch.randn(32) * 0.5
z = torch.from_numpy(np.random.RandomState(7).randn(4, 32)).float()
styles = {}
hooks = []
for name, m in g.named_modules():
    if name.endswith('conv.modulation'):
        hooks.append(m.register_forward_hook(lambda mod, inp, out, name=name: styles.__setitem__(name[: -len('.conv.modulation')], out.clone())))
with torch.no_grad():
    img1, ws1 = g([z], return_latents=True, randomize_noise=False)
    styles1 = dict(styles); styles.clear()
    img07, ws07 = g([z], return_latents=True, randomize_noise=False, truncation=0.7, truncation_latent=latent_avg[None])
for h in hooks: h.remove()
sd = {k: v.clone().contiguous() for k, v in g.state_dict().items()}
torch.save({'g_ema': sd, 'latent_avg': latent_avg.clone()}, f'{OUT}/tiny16.pt')
out = {'z': z, 'img_psi1': img1, 'ws_psi1': ws1, 'img_psi07': img07, 'ws_psi07': ws07}
out.update({f'style/{k}': v for k, v in styles1.items()})
save_file({k: v.contiguous() for k, v in out.items()}, f'{OUT}/tiny16_outputs.safetensors',
          metadata={'made_by': 'rosinality/stylegan2-pytorch model.py (CPU paths), see tests/data/rosinality/README.md'})
print(sorted(sd)[:50], len(sd)); print({k: tuple(v.shape) for k, v in out.items()})
print('img range', img1.min().item(), img1.max().item())
