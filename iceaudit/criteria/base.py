"""What a criterion is, and the two kinds of "eyes" criteria look through.

A criterion (ICE) is a differentiable function of generator images returning
``(y_act, y_sup)``: what an edit should change, and what it must leave fixed.
Things that must not move with the edit -- parser masks, triangulations --
are computed once per batch without gradients by `prepare` and then held
fixed by `evaluate`; `evaluate` accepts a context prepared on a batch of 1
for a batch of many perturbed copies of that face (broadcasting).

Images are the generator's raw output, [N, 3, R, R], nominally in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class LandmarkModel(Protocol):
    """images [N,3,R,R] -> landmarks [N,K,2] as (x, y) in [0, 1] image coordinates, differentiable."""

    num_points: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class FaceParser(Protocol):
    """images [N,3,R,R] -> logits [N, L, H, W]; ``labels[i]`` names logit channel i."""

    labels: Sequence[str]

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Eyes:
    """The face-analysis models criteria may use (either may be absent)."""

    landmarks: LandmarkModel | None = None
    parser: FaceParser | None = None


class Criterion:
    """images -> (y_act [N, Ma], y_sup [N, Ms]), both flattened per face."""

    name: str = "criterion"

    def prepare(self, images: torch.Tensor) -> Any:
        """Per-batch constants (masks, triangulations), computed without grad."""
        return None

    def evaluate(self, images: torch.Tensor, ctx: Any) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            ctx = self.prepare(images.detach())
        return self.evaluate(images, ctx)

    def describe(self) -> str:
        return self.name


def expand_to(t: torch.Tensor, n: int) -> torch.Tensor:
    """Broadcast a per-batch constant prepared on 1 face to n faces."""
    return t if t.shape[0] == n else t.expand(n, *t.shape[1:])


class Memo:
    """Wraps an eye so that criteria sharing one image batch run it once.

    The outputs for the last few inputs are kept, keyed by storage address,
    shape, strides, version and grad mode (so a ``detach()``ed view of the same
    batch hits, an in-place edit or a grad-requiring input misses); the inputs are
    held so their memory cannot be reused. Attributes (``labels``, ``num_points``,
    ``groups``) pass through.
    """

    def __init__(self, model, keep: int = 4) -> None:
        self.model = model
        self.keep = keep
        self._cache: list[tuple] = []  # (tensor, key, output), most recent last

    def __getattr__(self, name: str):
        if name in ("model", "keep", "_cache"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch._C._functorch.is_functorch_wrapped_tensor(x):  # forward-mode duals have no storage to key on
            return self.model(x)
        key = (x.data_ptr(), tuple(x.shape), x.stride(), x.dtype, x._version, x.requires_grad,
               torch.is_grad_enabled())
        for _, k, out in self._cache:
            if k == key:
                return out
        out = self.model(x)
        self._cache = (self._cache + [(x, key, out)])[-self.keep :]
        return out


def memoize(eyes: Eyes) -> Eyes:
    wrap = lambda m: m if m is None or isinstance(m, Memo) else Memo(m)  # noqa: E731
    return Eyes(landmarks=wrap(eyes.landmarks), parser=wrap(eyes.parser))
