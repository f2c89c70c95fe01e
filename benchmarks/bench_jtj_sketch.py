"""JᵀJ by finite differences against the randomized sketch (`jtj_method = "sketch"`): time and
the ICE direction they give, on the shipped demo generator (S, 2176 dims) for the `brows` recipe
entry (region-area criterion, masked-pixel suppressor), 2 faces.

    PYTHONPATH=. python benchmarks/bench_jtj_sketch.py
"""
import time, torch
from iceaudit.stylegan2.loaders import load_generator
from iceaudit.bank.recipe import load_recipe
from iceaudit.bank.ice import JacobianMethod, compute_jtj, ice_subspace
from iceaudit.bank.latent import LatentSpace
from iceaudit.criteria.spec import build_criterion, spec_id
from iceaudit.criteria.eyes import load_eyes
torch.set_num_threads(2)
G = load_generator("demo")
sr = next(s for s in load_recipe("facelab").subspaces if s.id == "brows")
eyes = load_eyes("facelab", "facelab")
sup_spec = {k: v for k, v in sr.suppress[0].items() if k != "part"}
crit = {spec_id(sr.criterion): build_criterion(sr.criterion, eyes), spec_id(sup_spec): build_criterion(sup_spec, eyes)}
ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)), None).detach()
space = LatentSpace(G, "S")
a_key, s_key = f"{spec_id(sr.criterion)}::act", f"{spec_id(sup_spec)}::sup"
res = {}
for name, how in [("fd", JacobianMethod("fd")), ("sketch64", JacobianMethod("sketch", rank=64)), ("sketch256", JacobianMethod("sketch", rank=256))]:
    t0 = time.perf_counter(); res[name] = compute_jtj(space, crit, ws, how); dt = time.perf_counter()-t0
    sub = ice_subspace(res[name][a_key], [res[name][s_key]], r=1e-3, t=1e-2)
    res[name + "_basis"] = sub.basis
    print(name, f"{dt:.1f} s (2 faces)", "basis rows", sub.basis.shape[0], "null dim", sub.null_dim, flush=True)
for name in ("sketch64", "sketch256"):
    c = abs(float(res["fd_basis"][0].double() @ res[name + "_basis"][0].double()))
    print(name, "principal direction |cos| vs fd", round(c, 4))
