"""ICE (interpretable control discovery): JᵀJ of criteria, null spaces, projected PCA.

For a criterion output y(x) over a latent vector x (S, W or W+), JᵀJ (D×D,
averaged over a few faces) says how strongly each latent direction moves y:
vᵀJᵀJv = |Jv|². A subspace for "change y_act, keep the suppressors fixed" is

1. for each suppressor A_s = JᵀJ: its approximate null space, the eigenvectors
   with |λ| < r·λmax;
2. the intersection N of those null spaces (principal angles, via SVD);
3. "early projected PCA": eigenvectors V' of Nᵀ A_act N with λ > t·λmax (λmax of
   the unprojected A_act), mapped back, V = N V'.

JᵀJ comes from the exact Jacobian (batched reverse- or forward-mode autodiff:
every face in a replicated batch carries its own one-hot cotangent/tangent) or
from finite differences of the rendered images; both group coordinates by the
first style layer they touch and re-run only the synthesis from there.

A sketched JᵀJ stays a factor (`LowRankGram`, BᵀB) and is solved in that form: at 1024 px
S has 9,088 dims, and one dense float64 JᵀJ is 660 MB per output block.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from iceaudit.bank.latent import LatentSpace
from iceaudit.criteria.base import Criterion

Key = str  # "<criterion id>::act" or "<criterion id>::sup"


@dataclass(frozen=True)
class LowRankGram:
    """A JᵀJ held as its factor: JᵀJ = BᵀB with B [R, D] (R rows from the sketch of every face).

    Args:
        factor: B, float32.
    """

    factor: torch.Tensor

    def __post_init__(self) -> None:
        assert self.factor.ndim == 2, self.factor.shape

    @property
    def shape(self) -> tuple[int, int]:
        d = self.factor.shape[1]
        return (d, d)

    def dense(self) -> torch.Tensor:
        """The [D, D] float64 matrix (for small D and for tests)."""
        B = self.factor.double()
        return B.T @ B


Gram = torch.Tensor | LowRankGram


def _keys(criteria: Mapping[str, Criterion]) -> list[Key]:
    return [f"{cid}::{part}" for cid in criteria for part in ("act", "sup")]


def _evaluate_all(criteria, images, ctxs) -> dict[Key, torch.Tensor]:
    out = {}
    for cid, crit in criteria.items():
        act, sup = crit.evaluate(images, ctxs[cid])
        out[f"{cid}::act"], out[f"{cid}::sup"] = act, sup
    return out


def _jacobians_fd(space, criteria, ws1, ctxs, y0, *, eps, central, chunk, tick):
    with torch.no_grad():
        x0 = space.encode(ws1)  # [1, D]
    h = float(eps * x0.abs().mean().clamp_min(1e-8))
    jac = {k: torch.zeros(v.shape[1], space.dim) for k, v in y0.items()}
    for start, coords in space.coordinate_groups():
        with torch.no_grad():
            state = space.G.synthesis_prefix(space.styles(x0, ws1), start=start, noise_mode="const")
        for i in range(0, len(coords), chunk):
            idx = torch.tensor(coords[i : i + chunk])
            e = torch.zeros(len(idx), space.dim, dtype=x0.dtype)
            e[torch.arange(len(idx)), idx] = h
            with torch.no_grad():
                plus = _evaluate_all(criteria, space.render(x0 + e, ws1, start, state), ctxs)
                minus = _evaluate_all(criteria, space.render(x0 - e, ws1, start, state), ctxs) if central else y0
            for k in jac:
                diff = plus[k] - (minus[k] if central else minus[k].expand_as(plus[k]))
                jac[k][:, idx] = (diff / (2 * h if central else h)).T.float()
            tick(len(idx))
    return jac


def _outputs_of_latent(space, criteria, ws1, ctxs, sizes):
    """(x0 [1, D], f) with f(x [B, D]) = every criterion output [B, Σ M_k] in ``sizes`` order,
    rendering only from the first layer the space touches (the prefix is cached once)."""
    with torch.no_grad():
        x0 = space.encode(ws1)
    order = [layer.name for layer in space.G.style_layers]
    start = min((space.first_layer(i) for i in range(space.dim)), key=order.index)
    with torch.no_grad():
        state = space.G.synthesis_prefix(space.styles(x0, ws1), start=start, noise_mode="const")

    def f(x):
        ys = _evaluate_all(criteria, space.render(x, ws1, start, state), ctxs)
        return torch.cat([ys[k] for k in sizes], dim=1)

    return x0, f


def _jacobians_exact(space, criteria, ws1, ctxs, y0, *, mode, chunk, tick):
    d = space.dim
    sizes = {k: v.shape[1] for k, v in y0.items()}
    m_total = sum(sizes.values())
    x0, f = _outputs_of_latent(space, criteria, ws1, ctxs, sizes)

    if mode == "auto":
        mode = "reverse" if m_total <= d else "forward"
    full = torch.zeros(m_total, d)
    if mode == "reverse":  # one face per output row, each with its one-hot cotangent
        for i in range(0, m_total, chunk):
            rows = torch.arange(i, min(i + chunk, m_total))
            x = x0.expand(len(rows), d).clone().requires_grad_(True)
            y = f(x)
            cot = torch.zeros_like(y)
            cot[torch.arange(len(rows)), rows] = 1
            (g,) = torch.autograd.grad(y, x, cot)
            full[rows] = g.detach().float()
            tick(len(rows) * d / max(m_total, 1))
    else:  # forward: one face per input coordinate, each with its one-hot tangent
        for i in range(0, d, chunk):
            cols = torch.arange(i, min(i + chunk, d))
            tan = torch.zeros(len(cols), d, dtype=x0.dtype)
            tan[torch.arange(len(cols)), cols] = 1
            _, jv = torch.func.jvp(f, (x0.expand(len(cols), d).clone(),), (tan,))
            full[:, cols] = jv.detach().T.float()
            tick(len(cols))
    return dict(zip(sizes, torch.split(full, list(sizes.values()), dim=0)))


def _jacobians_sketch(space, criteria, ws1, ctxs, y0, *, rank, seed, eps, chunk, tick):
    """Per key a factor B [r, D] with BᵀB ≈ JᵀJ: randomized range finding (Halko, Martinsson
    and Tropp 2011). Y = JΩ from `rank` finite differences along Gaussian directions Ω [D, r]
    (the range needs no exact derivatives, and forward-mode AD does not reach through every
    criterion: grid_sample has none); Q = orth(Y); B = QᵀJ from r reverse-mode passes. A key
    with at most `rank` outputs gets its exact Jacobian (one-hot cotangents) instead. JᵀJ is then exact on the range of Q and zero
    off it; the directions it drops are the weakest the sketch saw, and the bank's validation
    measures the leakage they may carry. Cost: rank + Σ min(M_k, rank) passes, not D."""
    d = space.dim
    sizes = {k: v.shape[1] for k, v in y0.items()}
    offsets = dict(zip(sizes, torch.cumsum(torch.tensor([0, *sizes.values()]), 0).tolist()))
    m_total = sum(sizes.values())
    x0, f = _outputs_of_latent(space, criteria, ws1, ctxs, sizes)
    r = min(rank, d)
    big = any(m > r for m in sizes.values())
    passes = sum(min(m, r) for m in sizes.values()) + (r if big else 0)
    tick = (lambda n, _tick=tick: _tick(n * d / passes))  # a face is D coordinates' worth of progress
    Y = torch.zeros(m_total, r)
    if big:  # the range needs no exact derivatives: finite differences along the random directions
        omega = torch.randn(d, r, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(x0.dtype)
        omega = omega / omega.norm(dim=0, keepdim=True)
        h = float(eps * x0.abs().mean().clamp_min(1e-8))
        with torch.no_grad():
            y0_all = f(x0)
            for i in range(0, r, chunk):
                tan = omega[:, i:i + chunk].T.contiguous()  # [c, D]
                Y[:, i:i + len(tan)] = ((f(x0 + h * tan) - y0_all) / h).T.float()
                tick(len(tan))
    rows: list[tuple[str, torch.Tensor]] = []  # (key, cotangent on that key's outputs [M_k]) in order
    for k, m in sizes.items():
        lo = offsets[k]
        basis = torch.eye(m) if m <= r else torch.linalg.qr(Y[lo:lo + m].double())[0].T.float()
        rows += [(k, row) for row in basis]
    out: dict[str, list[torch.Tensor]] = {k: [] for k in sizes}
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk]
        cot = torch.zeros(len(part), m_total, dtype=x0.dtype)
        for j, (k, row) in enumerate(part):
            cot[j, offsets[k]:offsets[k] + sizes[k]] = row
        x = x0.expand(len(part), d).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x), x, cot)
        for (k, _), gi in zip(part, g.detach().float()):
            out[k].append(gi)
        tick(len(part))
    return {k: torch.stack(v) if v else torch.zeros(0, d) for k, v in out.items()}  # a block may have no outputs


@dataclass(frozen=True)
class JacobianMethod:
    """How the Jacobians are taken.

    Args:
        method: "fd" (finite differences of the rendered images), "exact" (autodiff), or
            "sketch" (a randomized rank-`rank` factor of JᵀJ, reverse-mode autodiff: for large S at
            high resolution, where D passes per face are too many; see `_jacobians_sketch`).
        eps: the finite-difference step, as a share of the latent's mean |x|.
        central: central differences (two renders per coordinate) instead of forward ones.
        exact_mode: for "exact": "reverse", "forward", or "auto" (the side with fewer passes).
        chunk: coordinates (or output rows) per batched pass.
        rank: for "sketch": directions kept per criterion output block.
        seed: for "sketch": seed of the random directions.
    """

    method: str = "fd"
    eps: float = 1e-3
    central: bool = False
    exact_mode: str = "auto"
    chunk: int = 64
    rank: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("fd", "exact", "sketch"):
            raise ValueError(f"method must be 'fd', 'exact' or 'sketch', not {self.method!r}")
        if self.rank < 1:
            raise ValueError(f"sketch rank must be at least 1, not {self.rank!r}")
        if self.exact_mode not in ("auto", "reverse", "forward"):
            raise ValueError(f"exact mode must be auto, reverse or forward, not {self.exact_mode!r}")


def jacobians(space: LatentSpace, criteria: Mapping[str, Criterion], ws1: torch.Tensor,
              how: JacobianMethod = JacobianMethod(),
              progress: Callable[[float], None] | None = None) -> dict[Key, torch.Tensor]:
    """Jacobians [M, D] of every criterion output of one face ``ws1`` [1, num_ws, w_dim]
    (for "sketch": factors [r, D] with the same JᵀJ on the sketched range).

    Args:
        how: finite differences or autodiff, and their step and batch sizes.
        progress: optional ``progress(n)`` called as coordinates are done.
    """
    tick = progress or (lambda n: None)
    ws1 = ws1.detach()
    with torch.no_grad():
        images = space.G.synthesis(ws1, noise_mode="const")
        ctxs = {cid: c.prepare(images) for cid, c in criteria.items()}
        y0 = _evaluate_all(criteria, images, ctxs)
    if how.method == "fd":
        return _jacobians_fd(space, criteria, ws1, ctxs, y0, eps=how.eps, central=how.central, chunk=how.chunk,
                             tick=tick)
    if how.method == "sketch":
        return _jacobians_sketch(space, criteria, ws1, ctxs, y0, rank=how.rank, seed=how.seed, eps=how.eps,
                                 chunk=how.chunk, tick=tick)
    return _jacobians_exact(space, criteria, ws1, ctxs, y0, mode=how.exact_mode, chunk=how.chunk, tick=tick)


def compute_jtj(space: LatentSpace, criteria: Mapping[str, Criterion], ws: torch.Tensor,
                how: JacobianMethod = JacobianMethod(), *, cache_dir: str | Path | None = None,
                cache_tag: str = "", progress: Callable[[float], None] | None = None) -> dict[Key, Gram]:
    """JᵀJ [D, D] (float64) of every criterion's y_act and y_sup, averaged over the faces ``ws``;
    for the "sketch" method a `LowRankGram` (its factor) instead.

    Args:
        how: how each face's Jacobian is taken (`JacobianMethod`).
        cache_dir: where results are cached, keyed by the generator fingerprint, criteria,
            space, faces and method (plus ``cache_tag``, e.g. the eyes' fingerprints).
        progress: optional ``progress(n)`` called as coordinates are done.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"jtj-{_cache_key(space, criteria, ws, how, cache_tag)}.safetensors"
        if path.is_file():
            from safetensors.torch import load_file

            cached = load_file(str(path))
            if set(cached) == set(_keys(criteria)):
                return {k: LowRankGram(v) if how.method == "sketch" else v for k, v in cached.items()}
    tick = progress or (lambda n: None)
    n_faces = ws.shape[0]
    if how.method == "sketch":  # kept as factors: rows of every face, scaled so that BᵀB is the mean
        rows: dict[Key, list[torch.Tensor]] = {k: [] for k in _keys(criteria)}
        for n in range(n_faces):
            for k, b in jacobians(space, criteria, ws[n : n + 1], how, progress=tick).items():
                rows[k].append(b / n_faces ** 0.5)
        out: dict[Key, Gram] = {k: LowRankGram(torch.cat(v).contiguous()) for k, v in rows.items()}
    else:
        total = {k: torch.zeros(space.dim, space.dim, dtype=torch.float64) for k in _keys(criteria)}
        for n in range(n_faces):
            for k, j in jacobians(space, criteria, ws[n : n + 1], how, progress=tick).items():
                total[k] += (j.T @ j).double()  # float32 product (the cost), float64 accumulation
        out = {k: v / n_faces for k, v in total.items()}
    if path is not None:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: (v.factor if isinstance(v, LowRankGram) else v).contiguous() for k, v in out.items()},
                  str(path))
    return out


def _cache_key(space, criteria, ws, how: JacobianMethod, tag) -> str:
    G = space.G
    meta = {
        "generator": G.fingerprint(),
        "criteria": sorted(criteria),
        "space": space.space,
        "layers": space.layers,
        "method": how.method,
        "eps": how.eps,
        "central": how.central,
        **({"rank": how.rank, "seed": how.seed, "form": "factor"} if how.method == "sketch" else {}),
        "tag": tag,
        "ws": hashlib.sha256(ws.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:24]


# --- solving -------------------------------------------------------------------


def null_space(A: torch.Tensor, r: float) -> torch.Tensor:
    """Columns spanning the approximate null space of a PSD matrix: |λ| < r·λmax."""
    lam, vec = torch.linalg.eigh(A)
    lmax = lam.abs().max()
    if lmax <= 0:
        return torch.eye(A.shape[0], dtype=A.dtype)
    return vec[:, lam.abs() < r * lmax]


def intersect(bases: Sequence[torch.Tensor], cos: float = 0.99) -> torch.Tensor:
    """Orthonormal basis of the (approximate) intersection of column spaces.

    Principal angles by SVD: directions of the current span whose cosine to the
    next span exceeds ``cos`` are kept.
    """
    current = bases[0]
    for nxt in bases[1:]:
        if current.shape[1] == 0:
            break
        u, s, _ = torch.linalg.svd(current.T @ nxt, full_matrices=False)
        current = current @ u[:, s > cos]
    return current


@dataclass
class IceResult:
    basis: torch.Tensor  # [k, D] orthonormal rows, strongest first
    eigenvalues: torch.Tensor  # [k]
    null_dim: int  # dimension of the suppressors' joint null space
    info: dict = field(default_factory=dict)


def ice_subspace(
    A_act: Gram,
    A_sup: Sequence[Gram] = (),
    *,
    r: float = 1e-3,
    t: float = 1e-2,
    cos: float = 0.99,
    max_rank: int | None = None,
) -> IceResult:
    """Directions that move the activating outputs while the suppressors stay put.

    Args:
        A_act: JᵀJ of the outputs to move.
        A_sup: JᵀJ of each block of outputs to keep fixed.
        r: a suppressor's null space: eigenvalues below r·λmax.
        t: directions kept: eigenvalues above t·λmax of the unprojected A_act.
        cos: principal-angle cosine above which null-space directions count as shared.
        max_rank: at most this many directions.
    """
    if isinstance(A_act, LowRankGram) and all(isinstance(A, LowRankGram) for A in A_sup):
        return _ice_low_rank(A_act, list(A_sup), r=r, t=t, cos=cos, max_rank=max_rank)
    A_act = _dense(A_act)
    d = A_act.shape[0]
    nulls = [null_space(_dense(A), r) for A in A_sup]
    N = intersect(nulls, cos) if nulls else torch.eye(d, dtype=torch.float64)
    if N.shape[1] == 0:
        return IceResult(torch.zeros(0, d), torch.zeros(0), 0)
    lam, vec = torch.linalg.eigh(N.T @ A_act @ N)
    lam, vec = lam.flip(0), vec.flip(1)
    # relative to the strongest direction of the *unconstrained* criterion, so that directions
    # that barely move it (all that survive strong suppressors, say) are not kept
    lmax = torch.linalg.eigvalsh(A_act)[-1]
    return _kept(N @ vec, lam, lmax, t, max_rank, int(N.shape[1]))


def _dense(A: Gram) -> torch.Tensor:
    return A.dense() if isinstance(A, LowRankGram) else A.double()


def _kept(columns: torch.Tensor, lam: torch.Tensor, lmax: torch.Tensor, t: float, max_rank: int | None,
          null_dim: int) -> IceResult:
    """The directions (columns, strongest first) whose eigenvalue exceeds t·lmax, at most max_rank."""
    keep = lam > t * lmax if lmax > 0 else torch.zeros_like(lam, dtype=torch.bool)
    if max_rank is not None:
        keep &= torch.arange(len(lam)) < max_rank
    V = _fix_signs(columns[:, keep].T)  # [k, D]
    return IceResult(V.float(), lam[keep].float(), null_dim)


def _moved_rows(B: torch.Tensor, r: float) -> torch.Tensor:
    """Orthonormal rows spanning the directions where BᵀB's eigenvalue is at least r·λmax
    (the complement of `null_space`)."""
    _, s, vh = torch.linalg.svd(B.double(), full_matrices=False)
    if s.numel() == 0 or s[0] <= 0:
        return vh[:0]
    return vh[s**2 >= r * s[0] ** 2]


def _ice_low_rank(A_act: LowRankGram, A_sup: list[LowRankGram], *, r, t, cos, max_rank) -> IceResult:
    """`ice_subspace` on factors, never forming a D×D matrix. The joint null space is kept as the
    complement of an orthonormal span S of excluded directions. The first suppressor excludes the
    directions it moves; each next one, restricted to the complement (W = U − USᵀS), excludes the
    directions it moves by at least 1 − cos² (squared singular values of W): the principal vectors
    `intersect` drops, so both solves agree. The activating factor projected onto the complement,
    C = B(I − SᵀS), gives the restricted eigenpairs by its SVD."""
    B = A_act.factor.double()
    d = B.shape[1]
    span = torch.zeros(0, d, dtype=torch.float64)
    for A in A_sup:
        moved = _moved_rows(A.factor, r)
        _, s, vh = torch.linalg.svd(moved - (moved @ span.T) @ span, full_matrices=False)
        span = torch.cat([span, vh[s**2 >= 1 - cos**2]])
    null_dim = d - span.shape[0]
    if null_dim == 0:
        return IceResult(torch.zeros(0, d), torch.zeros(0), 0)
    _, s, vh = torch.linalg.svd(B - (B @ span.T) @ span, full_matrices=False)
    s_all = torch.linalg.svdvals(B)
    lmax = s_all[0] ** 2 if s_all.numel() else torch.tensor(0.0, dtype=torch.float64)
    return _kept(vh.T, s**2, lmax, t, max_rank, null_dim)


def _fix_signs(V: torch.Tensor) -> torch.Tensor:
    """Deterministic sign: each row's largest-magnitude entry is positive."""
    if V.shape[0] == 0:
        return V
    idx = V.abs().argmax(dim=1)
    s = torch.sign(V[torch.arange(V.shape[0]), idx])
    s[s == 0] = 1
    return V * s[:, None]
