import pytest
import torch

from bank_helpers import HalfParser, Projection
from iceaudit.bank.ice import (JacobianMethod, LowRankGram, compute_jtj, ice_subspace, intersect, jacobians,
                               null_space)
from iceaudit.bank.latent import LatentSpace
from iceaudit.criteria.pixels import MaskedPixels, RegionColour
from tiny_stylegan import tiny_generator


def small_generator():
    """A small real StyleGAN2 (16 px, 8 channels): JᵀJ over its 56 style dims in milliseconds."""
    return tiny_generator(0, w_dim=8, channel_base=64, channel_max=8, jitter=0.1)


def _faces(G, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return G.mapping(torch.randn(n, G.z_dim, generator=g))


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def two_criteria():
    """A colour and a masked-pixel criterion on two faces: (space, criteria, ws, exact reverse-mode JᵀJ,
    outputs per key)."""
    G = small_generator()
    crit = {"c": RegionColour(HalfParser(), ["skin"], size=16), "p": MaskedPixels(HalfParser(), ["hair"], size=8)}
    ws = _faces(G, 2)
    space = LatentSpace(G, "S")
    rev = compute_jtj(space, crit, ws, JacobianMethod("exact", exact_mode="reverse"))
    outputs = {k: j.shape[0] for k, j in jacobians(space, crit, ws[:1], JacobianMethod("exact")).items()}
    return space, crit, ws, rev, outputs


def test_exact_reverse_forward_and_finite_differences_agree(two_criteria):
    space, crit, ws, rev, _ = two_criteria
    fwd = compute_jtj(space, crit, ws, JacobianMethod("exact", exact_mode="forward"))
    fd = compute_jtj(space, crit, ws, JacobianMethod("fd", eps=1e-3, central=True))
    fd_fwd = compute_jtj(space, crit, ws, JacobianMethod("fd", eps=1e-3))
    for k in rev:
        assert rev[k].shape == (space.dim, space.dim)
        assert rev[k].norm() > 0
        assert _rel(fwd[k], rev[k]) < 1e-4, k
        assert _rel(fd[k], rev[k]) < 2e-2, k
        assert _rel(fd_fwd[k], rev[k]) < 5e-2, k


def test_a_sketch_of_full_rank_is_exact_and_a_lower_rank_keeps_the_strongest_directions(two_criteria):
    space, crit, ws, exact, outputs = two_criteria
    full = {k: g.dense() for k, g in compute_jtj(space, crit, ws, JacobianMethod("sketch", rank=space.dim)).items()}
    # exact up to the finite-difference range finder's error (measured ≤ 1.1e-5)
    assert all(_rel(full[k], exact[k]) < 1e-4 for k in exact)

    def top_cosine(A, B, k=3):  # smallest cosine between the top-k eigenvector spans
        return float(torch.linalg.svdvals(torch.linalg.eigh(A)[1][:, -k:].T @ torch.linalg.eigh(B)[1][:, -k:]).min())

    low, lower = ({k: g.dense() for k, g in compute_jtj(space, crit, ws, JacobianMethod("sketch", rank=r)).items()}
                  for r in (16, 4))
    for k in exact:
        if outputs[k] <= 16:
            assert _rel(low[k], exact[k]) < 1e-5, k  # few outputs: taken exactly
        else:
            assert top_cosine(low[k], exact[k]) > 0.9, k  # measured 0.95–1.0 at rank 16 of 56
            assert top_cosine(lower[k], exact[k]) < top_cosine(low[k], exact[k]) + 1e-9, k
    with pytest.raises(ValueError):
        JacobianMethod("sketch", rank=0)


def test_ice_recovers_known_gradient_direction_and_suppresses():
    G = small_generator()
    ws = _faces(G, 1)
    space = LatentSpace(G, "S")
    crit = Projection(G.img_resolution)
    # truth by plain autograd
    x = space.encode(ws).detach().requires_grad_(True)
    act, sup = crit.evaluate(space.render(x, ws), None)
    (g_act,) = torch.autograd.grad(act.sum(), x, retain_graph=True)
    (g_sup,) = torch.autograd.grad(sup.sum(), x)
    g_act, g_sup = g_act[0].double(), g_sup[0].double()

    A = compute_jtj(space, {"p": crit}, ws, JacobianMethod("exact"))
    plain = ice_subspace(A["p::act"], [], t=1e-2)
    assert plain.basis.shape[0] == 1
    assert abs(torch.nn.functional.cosine_similarity(plain.basis[0].double(), g_act, dim=0)) > 0.99

    supp = ice_subspace(A["p::act"], [A["p::sup"]], r=1e-3)
    want = g_act - (g_act @ g_sup) / (g_sup @ g_sup) * g_sup
    v = supp.basis[0].double()
    assert supp.null_dim == space.dim - 1
    assert abs(torch.nn.functional.cosine_similarity(v, want, dim=0)) > 0.9
    assert abs(v @ g_sup) / g_sup.norm() < 1e-3  # the suppressed output does not move
    assert abs(plain.basis[0].double() @ g_sup) / g_sup.norm() > 1e-2  # ...but it would have without suppression


def test_null_space_and_intersection_of_planted_subspaces():
    torch.manual_seed(0)
    q = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64)).Q
    A1 = q[:, :2] @ torch.diag(torch.tensor([5.0, 1.0], dtype=torch.float64)) @ q[:, :2].T  # null: q2..q5
    A2 = q[:, 2:3] @ q[:, 2:3].T * 3  # null: q0,q1,q3,q4,q5
    n1 = null_space(A1, 1e-6)
    assert n1.shape[1] == 4
    n = intersect([n1, null_space(A2, 1e-6)])
    assert n.shape[1] == 3
    proj = n @ n.T
    assert torch.allclose(proj, q[:, 3:] @ q[:, 3:].T, atol=1e-8)


def _span_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest sine of the principal angles between two row spans of equal dimension."""
    cosines = torch.linalg.svdvals(a.double() @ b.double().T)
    return float((1 - cosines.min() ** 2).clamp_min(0).sqrt())


def test_factored_solve_matches_the_dense_solve_on_the_same_sketch(two_criteria):
    """A sketched JᵀJ is solved as factors (no D×D matrix); the result is the dense solve's."""
    space, crit, ws, _, _ = two_criteria
    gram = compute_jtj(space, crit, ws, JacobianMethod("sketch", rank=16))
    assert all(isinstance(g, LowRankGram) and g.factor.shape[1] == space.dim for g in gram.values())
    found = []
    for act, sups in [("c::act", []), ("c::act", ["p::act"]), ("p::act", ["c::act", "c::sup"]),
                      ("p::act", ["c::act", "p::sup"]), ("c::act", ["c::sup", "p::act", "p::sup"])]:
        low = ice_subspace(gram[act], [gram[k] for k in sups], t=1e-3)
        dense = ice_subspace(gram[act].dense(), [gram[k].dense() for k in sups], t=1e-3)
        assert low.basis.shape == dense.basis.shape, (act, sups)
        assert low.null_dim == dense.null_dim, (act, sups)
        assert torch.allclose(low.eigenvalues, dense.eigenvalues, rtol=1e-4), (act, sups)
        if len(low.basis):
            found.append(len(sups))
            assert _span_distance(low.basis, dense.basis) < 1e-3, (act, sups)
        for k in sups:  # the suppressed outputs do not move along the result
            B = gram[k].factor.double()
            assert float((B @ low.basis.double().T).norm() / B.norm()) < 0.1, (act, k)
    assert sorted(found)[:3] == [0, 1, 2], found  # unsuppressed, one and two suppressors all found directions


def test_a_sketched_jtj_caches_as_factors(tmp_path, two_criteria):
    space, crit, ws, _, _ = two_criteria
    how = JacobianMethod("sketch", rank=8)
    first = compute_jtj(space, crit, ws, how, cache_dir=tmp_path)
    again = compute_jtj(space, crit, ws, how, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("jtj-*.safetensors"))) == 1
    assert all(isinstance(again[k], LowRankGram) and torch.equal(again[k].factor, first[k].factor) for k in first)


def test_jtj_cache_is_reused(tmp_path):
    G = small_generator()
    ws = _faces(G, 1)
    space = LatentSpace(G, "S")
    crit = Projection(G.img_resolution)
    calls = []
    orig = crit.evaluate
    crit.evaluate = lambda im, ctx: (calls.append(1), orig(im, ctx))[1]
    a = compute_jtj(space, {"p": crit}, ws, cache_dir=tmp_path)
    n_first = len(calls)
    b = compute_jtj(space, {"p": crit}, ws, cache_dir=tmp_path)
    assert len(calls) == n_first and n_first > 0
    assert len(list(tmp_path.glob("jtj-*.safetensors"))) == 1
    assert torch.equal(a["p::act"], b["p::act"])
    compute_jtj(space, {"p": crit}, _faces(G, 1, seed=1), cache_dir=tmp_path)  # other faces: new entry
    assert len(list(tmp_path.glob("jtj-*.safetensors"))) == 2


def test_same_seed_same_basis_and_w_plus_space():
    G = small_generator()
    crit = {"c": RegionColour(HalfParser(), ["skin"], size=16)}
    for space in (LatentSpace(G, "S", ["b16.conv1", "b8.conv1"]), LatentSpace(G, "W+", [1, 3]), LatentSpace(G, "W")):
        r1 = ice_subspace(compute_jtj(space, crit, _faces(G, 2))["c::act"])
        r2 = ice_subspace(compute_jtj(space, crit, _faces(G, 2))["c::act"])
        assert r1.basis.shape[0] >= 1 and r1.basis.shape[1] == space.dim
        assert torch.allclose(r1.basis, r2.basis)
        assert torch.allclose(r1.basis @ r1.basis.T, torch.eye(r1.basis.shape[0]), atol=1e-5)


@pytest.mark.parametrize("bad", [{"method": "adjoint"}, {"method": "exact", "exact_mode": "sideways"}])
def test_an_unknown_jacobian_method_is_refused_when_named(bad):
    with pytest.raises(ValueError, match="must be"):
        JacobianMethod(**bad)
