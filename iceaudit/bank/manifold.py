"""Where a walk stays a face: an image-side bound on each subspace's step range.

A walk in a latent space always renders *something*; far enough along, the
generator extrapolates (a face-width walk smears the outline, a glasses walk
paints blue blobs). The bound here asks of every walked image: would it be
unusual among the faces the generator samples?

``FaceNovelty`` is a probabilistic PCA of the sampled faces' thumbnails (area
downsampling to ``size`` × ``size``, colour kept): the novelty of an image is its
squared Mahalanobis distance under that Gaussian (the top ``rank`` components
with their own variances, the rest pooled into one residual variance). It needs
no model of faces beyond the generator's own samples, so the same bound serves
FaceLab's 64 px generator and a 1024 px FFHQ one. The threshold is a quantile of
the novelty of *other* sampled faces (held out from the fit), so by construction
about ``1 - quantile`` of ordinary faces are over it.

``valid_range`` walks held-out faces outward from 0 along the step grid and keeps
each side up to the last step at which at most ``max_off_share`` of the faces are
over the threshold (every step before it too). The audit walks no further
(`Subspace.walk_range`).

Where the subspace has a criterion, a step must also still *move* it: each step's mean
change of the subspace's own measure, per unit and in SDs of it across faces, must be at
least ``min_response``. A walk can stay faces and stop being its attribute's edit: past
"no glasses" a glasses walk has nothing left to remove and changes the eyes instead.
The first step each way is always kept (a subspace must walk somewhere); a gated
attribute may barely respond there, before the faces reach its threshold, and the
bound applies from the second step on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from iceaudit.bank.edit import walk_images
from iceaudit.bank.format import Subspace

if TYPE_CHECKING:  # annotations only
    from typing import Mapping

    from iceaudit.criteria.spec import Measured
    from iceaudit.stylegan2.networks import Generator


@dataclass(frozen=True)
class ManifoldSettings:
    """How the bound is measured (stored in the bank's meta with the ranges it gave)."""

    fit_faces: int = 640  # sampled faces the PCA is fitted on
    held_out_faces: int = 384  # other sampled faces: they set the threshold, and the first are walked
    walk_faces: int = 32  # faces walked per subspace
    seed: int = 5
    size: int = 16  # thumbnail side
    rank: int = 24  # PCA components with their own variance
    quantile: float = 0.99  # threshold: this quantile of held-out faces' novelty
    max_off_share: float = 0.1  # a step is valid while at most this share of walked faces is over it
    steps_per_side: int = 8  # grid from 0 to each end of the stored step range
    min_response: float = 0.25  # a step is kept while it moves the own measure by at least this (SD/unit)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def thumbnails(images: torch.Tensor, size: int) -> torch.Tensor:
    """[N, 3 * size * size] float64: area-downsampled images, flattened (thumbnails pass through)."""
    if images.ndim == 2:
        assert images.shape[1] == 3 * size * size, images.shape
        return images.double()
    assert images.ndim == 4 and images.shape[1] == 3, images.shape
    return F.adaptive_avg_pool2d(images.float(), size).flatten(1).double()


@dataclass(frozen=True)
class FaceNovelty:
    """Probabilistic PCA of sampled faces' thumbnails; `score` is the squared Mahalanobis distance."""

    mean: torch.Tensor  # [D]
    components: torch.Tensor  # [k, D], orthonormal rows
    variances: torch.Tensor  # [k]
    residual_variance: float
    size: int
    threshold: float = float("inf")

    @classmethod
    def fit(cls, images: torch.Tensor, size: int, rank: int) -> "FaceNovelty":
        """Fit on ``images`` [N, 3, R, R] or their thumbnails (N > rank)."""
        x = thumbnails(images, size)
        n, d = x.shape
        k = min(rank, n - 2, d - 1)
        assert k >= 1, f"{n} faces are too few for a PCA of rank {rank}"
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        eig = s**2 / (n - 1)
        # the residual variance is that of the components not kept, averaged over the whole
        # rest of the space (d - k dims), as the PPCA maximum-likelihood estimate has it
        residual = float(eig[k:].sum() / (d - k)) or float(eig[k - 1]) * 1e-3
        return cls(mean=mean, components=vt[:k], variances=eig[:k].clamp_min(residual), residual_variance=residual,
                   size=size)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Novelty of each image: [N] float64 (larger = further from the sampled faces)."""
        x = thumbnails(images, self.size) - self.mean
        c = x @ self.components.T
        resid = (x * x).sum(1) - (c * c).sum(1)
        return (c * c / self.variances).sum(1) + resid.clamp_min(0) / self.residual_variance

    def with_threshold(self, held_out: torch.Tensor, quantile: float) -> "FaceNovelty":
        """The same model whose threshold is the ``quantile`` of ``held_out`` faces' novelty."""
        t = float(torch.quantile(self.score(held_out), quantile))
        return FaceNovelty(self.mean, self.components, self.variances, self.residual_variance, self.size, t)

    def off(self, images: torch.Tensor) -> torch.Tensor:
        """[N] bool: over the threshold (not like the sampled faces)."""
        return self.score(images) > self.threshold


@dataclass(frozen=True)
class WalkValidity:
    """One subspace's measured valid range and the evidence for it."""

    valid_range: tuple[float, float]
    alphas: list[float]
    off_share: list[float]  # share of walked faces over the threshold at each alpha
    leaves_at_first_step: bool = False  # even the smallest step is off the faces for too many
    # per alpha: the own measure's mean change over the step that ends there (from the next
    # alpha toward 0), per unit, in SDs across faces; None without a criterion
    own_response: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"valid_range": list(self.valid_range), "alphas": self.alphas, "off_share": self.off_share,
                "leaves_at_first_step": self.leaves_at_first_step, "own_response": self.own_response}


_FITTED: dict[tuple[str, ManifoldSettings], tuple[FaceNovelty, torch.Tensor]] = {}  # one per generator and settings


def fit_novelty(G: "Generator", settings: ManifoldSettings) -> tuple[FaceNovelty, torch.Tensor]:
    """The novelty model of ``G``'s sampled faces, and the held-out latents to walk (fitted once per
    generator and settings in a process: it is the same every time).

    Returns:
        The fitted model with its threshold, and ws [walk_faces, num_ws, w_dim] of held-out faces.
    """
    key = (G.fingerprint(), settings)
    if key not in _FITTED:
        _FITTED.clear()  # keep one: a 1024 px generator's is small, but there is no need for more
        _FITTED[key] = _fit_novelty(G, settings)
    return _FITTED[key]


def _fit_novelty(G: "Generator", settings: ManifoldSettings) -> tuple[FaceNovelty, torch.Tensor]:
    from iceaudit.bank.build import bank_latents

    ws = bank_latents(G, settings.fit_faces + settings.held_out_faces, settings.seed)
    with torch.no_grad():  # thumbnails only are kept: a 1024 px generator's images would not fit
        thumbs = torch.cat([thumbnails(G.synthesis(ws[i:i + 16]).clamp(-1, 1), settings.size)
                            for i in range(0, len(ws), 16)])
    fit, held = thumbs[:settings.fit_faces], thumbs[settings.fit_faces:]
    model = FaceNovelty.fit(fit, settings.size, settings.rank).with_threshold(held, settings.quantile)
    return model, ws[settings.fit_faces:][: settings.walk_faces]


def walk_validity(G: "Generator", sub: Subspace, ws: torch.Tensor, novelty: FaceNovelty,
                  settings: ManifoldSettings, measured: "Measured | None" = None) -> WalkValidity:
    """Walk ``ws`` along ``sub`` from 0 to each end of its step range; keep each side while it stays
    faces (and, given the subspace's own measure, while each step still moves it).

    Args:
        G: the generator.
        sub: the subspace (its stored ``step_range`` is the most a walk may go).
        ws: the faces to walk, [N, num_ws, w_dim].
        novelty: the fitted bound.
        settings: the grid, the share of faces allowed over the bound and the least response.
        measured: the subspace's own criterion measure, or None (no response bound).
    """
    lo, hi = sub.step_range
    k = settings.steps_per_side
    alphas = sorted({round(lo * i / k, 6) for i in range(1, k + 1)} | {round(hi * i / k, 6) for i in range(1, k + 1)})
    grid = sorted(set(alphas) | {0.0})
    share: dict[float, float] = {}
    values = []  # per chunk: [n, len(grid)] own measure
    with torch.no_grad():
        for i in range(0, len(ws), 16):
            frames = walk_images(G, sub, ws[i:i + 16], grid).clamp(-1, 1)  # [n, A, 3, R, R]
            off = novelty.off(frames.flatten(0, 1)).reshape(frames.shape[0], len(grid)).double().sum(0)
            for a, v in zip(grid, off.tolist()):
                share[a] = share.get(a, 0.0) + v
            if measured is not None:
                ctx = measured.prepare(frames[:, grid.index(0.0)])
                values.append(torch.stack([measured.value(frames[:, j], ctx) for j in range(len(grid))], 1).double())
    share = {a: v / len(ws) for a, v in share.items()}
    response = _own_response(grid, torch.cat(values), sub) if values else None

    def kept(a: float) -> bool:
        return share[a] <= settings.max_off_share and (response is None or response[a] >= settings.min_response)

    def reach(side: list[float]) -> float:
        # the first step is always kept (a subspace must walk somewhere); `leaves_at_first_step` says so
        last = side[0]
        for a in side[1:]:  # outward from 0
            if not kept(a):
                break
            last = a
        return last

    neg = sorted((a for a in alphas if a < 0), reverse=True)
    pos = sorted(a for a in alphas if a > 0)
    valid = (reach(neg) if lo < 0 else lo, reach(pos) if hi > 0 else hi)
    first = [side[0] for side in (neg, pos) if side]
    return WalkValidity(valid_range=(float(valid[0]), float(valid[1])), alphas=[float(a) for a in alphas],
                        off_share=[round(float(share[a]), 4) for a in alphas],
                        leaves_at_first_step=any(share[a] > settings.max_off_share for a in first),
                        own_response=None if response is None else [round(response[a], 4) for a in alphas])


def _own_response(grid: list[float], values: torch.Tensor, sub: Subspace) -> dict[float, float]:
    """Per alpha of ``grid`` (0 excluded): the measure's mean change over the step from the next alpha
    toward 0, per unit, in SDs across faces (the bank's calibration SD where it has one)."""
    assert values.shape[1] == len(grid), (values.shape, len(grid))
    zero = grid.index(0.0)
    sd = float((sub.validation.get("calibration") or {}).get("sd_measure") or values[:, zero].std()) or 1e-12
    out = {}
    for j, a in enumerate(grid):
        if j == zero:
            continue
        inner = j + 1 if j < zero else j - 1  # the neighbour toward 0
        out[a] = float(((values[:, j] - values[:, inner]) / (a - grid[inner])).mean()) / sd
    return out


def measure_valid_ranges(G: "Generator", subspaces: list[Subspace], settings: ManifoldSettings = ManifoldSettings(),
                         progress=None, measures: "Mapping[str, Measured] | None" = None) -> dict[str, WalkValidity]:
    """Every subspace's valid range on ``G`` (one novelty model for all).

    Args:
        G: the generator the subspaces belong to.
        subspaces: the subspaces to measure.
        settings: the bound's settings.
        progress: optional ``progress(1)`` per subspace.
        measures: subspace id -> its own criterion's measure, for the response bound (ids not
            in it, or None, get the image bound only).
    """
    novelty, ws = fit_novelty(G, settings)
    measures = measures or {}
    out = {}
    for s in subspaces:
        use = measures.get(s.id) if settings.min_response > 0 else None
        out[s.id] = walk_validity(G, s, ws, novelty, settings, use)
        if progress is not None:
            progress(1)
    return out



def with_valid_ranges(G: "Generator", subspaces: list[Subspace], settings: ManifoldSettings = ManifoldSettings(),
                      progress=None, measures: "Mapping[str, Measured] | None" = None) -> list[Subspace]:
    """``subspaces`` with their measured valid range set and its evidence in ``validation["manifold"]``.

    Args:
        G: the generator the subspaces belong to.
        subspaces: the subspaces to measure.
        settings: the bound's settings.
        progress: optional ``progress(1)`` per subspace.
        measures: subspace id -> its own criterion's measure (the response bound), or None.
    """
    measured = measure_valid_ranges(G, subspaces, settings, progress, measures)
    return [replace(s, valid_range=measured[s.id].valid_range,
                    validation={**s.validation, "manifold": measured[s.id].to_json()}) for s in subspaces]


def settings_from(values: dict[str, Any]) -> ManifoldSettings:
    """Settings from a recipe's ``[bank]`` keys ``manifold_<field>`` (e.g. ``manifold_fit_faces = 256``)."""
    from iceaudit.errors import UserError

    known = ManifoldSettings.__dataclass_fields__
    kwargs = {}
    for key, value in values.items():
        if not key.startswith("manifold_"):
            continue
        name = key[len("manifold_"):]
        if name not in known:
            raise UserError(f"unknown recipe key {key!r} (manifold keys: {', '.join('manifold_' + k for k in known)})")
        want = type(getattr(ManifoldSettings, name))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (want is int and not float(value).is_integer()):
            raise UserError(f"recipe key {key!r} must be a {want.__name__}, got {value!r}")
        kwargs[name] = want(value)
    st = ManifoldSettings(**kwargs)
    if st.fit_faces and st.fit_faces <= st.rank + 1:
        raise UserError(f"manifold_fit_faces ({st.fit_faces}) must exceed manifold_rank + 1 ({st.rank + 1})")
    counts = (st.held_out_faces, st.walk_faces, st.size, st.steps_per_side)
    if not 0 < st.quantile < 1 or not 0 <= st.max_off_share < 1 or st.min_response < 0 or min(counts) < 1:
        raise UserError("manifold settings out of range: 0 < quantile < 1, 0 <= max_off_share < 1, min_response >= 0, and "
                        "held_out_faces, walk_faces, size, steps_per_side >= 1")
    return st
