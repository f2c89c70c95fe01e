"""The true factors of the FaceLab world.

Every FaceLab face is a pure function of one factor vector: 19 named,
continuous numbers in a fixed order (`FACTOR_NAMES`). Each factor has a
documented range and meaning; the renderer (`render.py`) reads nothing else,
so moving one factor while holding the others fixed is an exact intervention
on one semantic. That is what the oracle does.

Vectors are torch tensors ``[N, 19]`` in `FACTOR_NAMES` order. Dicts of
``name -> value or [N] values`` are accepted wherever a vector is, and
unknown names or values outside a factor's range raise `UserError`.

The prior over faces (`sample_factors`) draws every factor independently:
uniform over its range for most, mostly-off with a soft ramp for glasses and
beard (see `Factor.prior`). The latent map in `latent.py` pushes z ~ N(0, I)
through an orthonormal projection into exactly this prior.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from iceaudit.errors import UserError


@dataclass(frozen=True)
class Factor:
    """One true factor: its range, what low and high look like, its prior.

    ``prior`` is how a standard-normal draw u becomes a value: ``"uniform"``
    maps Phi(u) linearly onto [low, high]; ``"gated"`` is mostly `low`: the
    value is smoothstep((Phi(u) - gate) / ramp) scaled onto the range, so a
    share `gate` of faces has none and the rest ramp up to full.
    """

    name: str
    low: float
    high: float
    meaning: str
    low_means: str
    high_means: str
    parts: tuple[str, ...]  # part labels of the pixels this factor moves (soft layers let
    #                          colour through: a thin beard shows the skin tone beneath)
    prior: str = "uniform"
    gate: float = 0.0
    ramp: float = 1.0
    cyclic: bool = False

    @property
    def span(self) -> float:
        return self.high - self.low


FACTORS: tuple[Factor, ...] = (
    Factor("skin_tone", 0.0, 1.0, "skin colour along a dark-to-light ramp (deep brown to pale)",
           "deep brown skin", "very light skin", ("skin", "nose", "mouth", "brows", "beard", "hair", "glasses")),
    Factor("face_width", 0.0, 1.0, "half-width of the face at the cheeks, 31 to 41 px at 128",
           "narrow face", "wide face", ("skin", "hair", "background", "beard", "glasses")),
    Factor("jaw", 0.0, 1.0, "jaw and chin shape: how much the lower face tapers",
           "pointed, tapered chin", "broad square jaw", ("skin", "background", "beard")),
    Factor("eye_size", 0.0, 1.0, "eye half-width 6 to 9.5 px at 128, iris scales with it",
           "small eyes", "large eyes", ("eyes",)),
    Factor("eye_openness", 0.0, 1.0, "lid aperture as a share of eye width",
           "nearly closed eyes", "wide open eyes", ("eyes",)),
    Factor("brow_height", 0.0, 1.0, "gap between eye centre and brow centre line, 10 to 17 px at 128",
           "low brows close to the eyes", "high, raised brows", ("brows",)),
    Factor("brow_thickness", 0.0, 1.0, "brow stroke thickness, 2.5 to 7 px at 128",
           "thin brows", "thick bushy brows", ("brows",)),
    Factor("smile", -1.0, 1.0, "mouth curvature: the corners' height relative to the centre",
           "frown (corners down)", "broad smile (corners up)", ("mouth",)),
    Factor("mouth_open", 0.0, 1.0, "gap between the lips, 0 to 7 px at 128",
           "closed mouth", "open mouth showing teeth", ("mouth",)),
    Factor("nose_width", 0.0, 1.0, "half-width of the nose at the nostrils, 5 to 11 px at 128",
           "narrow nose", "wide nose", ("nose",)),
    Factor("hair_colour", 0.0, 1.0, "hair (and brow, beard) colour along black-brown-auburn-blond",
           "black hair", "blond hair", ("hair", "brows", "beard", "skin")),
    Factor("hair_length", 0.0, 1.0, "hair volume and length: close crop to long hair past the chin",
           "short cropped hair", "long voluminous hair", ("hair", "background", "skin", "beard")),
    Factor("glasses", 0.0, 1.0, "opacity of thick-rimmed glasses (soft: 0 none, 1 fully drawn)",
           "no glasses", "dark thick-rimmed glasses (and a faint lens tint)", ("glasses", "eyes", "skin", "brows", "nose", "hair", "background"), prior="gated", gate=0.6, ramp=0.2),
    Factor("beard", 0.0, 1.0, "beard density and extent over the jaw, chin and upper lip",
           "clean shaven", "full beard", ("beard", "skin", "background"), prior="gated", gate=0.65, ramp=0.25),
    Factor("age", 0.0, 1.0, "age cues: forehead lines, smile folds, under-eye shadow, grey hair",
           "young: smooth skin, no grey", "old: deep lines, grey hair", ("skin", "hair", "brows", "beard")),
    Factor("bg_hue", 0.0, 1.0, "background hue angle as a share of the colour circle",
           "red", "red again (cyclic through yellow, green, cyan, blue, magenta)", ("background",),
           cyclic=True),
    Factor("bg_brightness", 0.0, 1.0, "background value (HSV V) from dark to bright",
           "dark background", "bright background", ("background",)),
    Factor("light_dir", -1.0, 1.0, "horizontal direction of the key light on face and hair",
           "light from image left", "light from image right", ("skin", "hair", "nose", "beard")),
    Factor("yaw", -1.0, 1.0, "small head turn (about +/-10 degrees): outline shifts, nose turns",
           "head turned toward image left", "head turned toward image right",
           ("background", "skin", "hair", "brows", "eyes", "nose", "mouth", "glasses", "beard")),
)

FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in FACTORS)
FACTOR_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(FACTORS)}
NUM_FACTORS = len(FACTORS)

LOW = torch.tensor([f.low for f in FACTORS], dtype=torch.float32)
HIGH = torch.tensor([f.high for f in FACTORS], dtype=torch.float32)


def factor(name: str) -> Factor:
    """The `Factor` called `name`; `UserError` naming the valid ones otherwise."""
    try:
        return FACTORS[FACTOR_INDEX[name]]
    except KeyError:
        raise UserError(
            f"unknown FaceLab factor {name!r}",
            hint="known factors: " + ", ".join(FACTOR_NAMES),
        ) from None


def check_names(names: Sequence[str]) -> list[str]:
    """Validate factor names (order kept); raises `UserError` on the first unknown one."""
    return [factor(n).name for n in names]


def check_seed(seed: object) -> int:
    """Seeds must be integers (bools and floats are refused, even 3.0)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise UserError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    return int(seed)


def check_factors(values: torch.Tensor, *, atol: float = 1e-5) -> torch.Tensor:
    """Check a ``[N, 19]`` factor tensor: shape, finite, every value in its range.

    Values within `atol` of a bound are clamped onto it (float round-off).
    Returns a float32 copy.
    """
    if not isinstance(values, torch.Tensor):
        values = torch.as_tensor(values, dtype=torch.float32)
    if values.ndim != 2 or values.shape[1] != NUM_FACTORS:
        raise UserError(
            f"factor vectors must have shape [N, {NUM_FACTORS}], got {list(values.shape)}",
            hint="order: " + ", ".join(FACTOR_NAMES),
        )
    values = values.detach().to(torch.float32).cpu()
    if not torch.isfinite(values).all():
        raise UserError("factor values must be finite numbers (found NaN or inf)")
    low, high = LOW - atol, HIGH + atol
    bad = (values < low) | (values > high)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        f = FACTORS[col]
        raise UserError(
            f"factor {f.name!r} = {float(values[row, col]):.4g} (row {row}) is outside its range "
            f"[{f.low:g}, {f.high:g}]",
            hint=f"{f.name}: {f.meaning}; {f.low:g} = {f.low_means}, {f.high:g} = {f.high_means}",
        )
    return torch.minimum(torch.maximum(values, LOW), HIGH)


def defaults(n: int = 1) -> torch.Tensor:
    """A neutral face: every factor at its range midpoint, no glasses, no beard."""
    mid = (LOW + HIGH) / 2
    mid[FACTOR_INDEX["glasses"]] = 0.0
    mid[FACTOR_INDEX["beard"]] = 0.0
    mid[FACTOR_INDEX["age"]] = 0.2
    mid[FACTOR_INDEX["yaw"]] = 0.0
    mid[FACTOR_INDEX["light_dir"]] = 0.0
    return mid.repeat(n, 1)


def from_dict(values: Mapping[str, object], n: int | None = None, base: torch.Tensor | None = None) -> torch.Tensor:
    """Factor tensor from ``{name: value or [N] values}``; unnamed factors come from `base`
    (default: `defaults`). Validates names and ranges."""
    check_names(list(values))
    sizes = {len(torch.as_tensor(v).reshape(-1)) for v in values.values()}
    if base is not None:
        sizes.add(base.shape[0])
    sizes.discard(1)
    if len(sizes) > 1:
        raise UserError(f"factor value lists have different lengths: {sorted(sizes)}")
    n = n or (sizes.pop() if sizes else 1)
    out = (defaults(n) if base is None else base.detach().clone().to(torch.float32))
    for name, v in values.items():
        out[:, FACTOR_INDEX[name]] = torch.as_tensor(v, dtype=torch.float32).reshape(-1)
    return check_factors(out)


def to_dict(values: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{name: [N] tensor}`` view of a ``[N, 19]`` factor tensor."""
    return {name: values[:, i] for i, name in enumerate(FACTOR_NAMES)}


def _std_normal_cdf(u: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(u / math.sqrt(2.0)))


def from_normal(u: torch.Tensor) -> torch.Tensor:
    """Map independent standard-normal draws ``[N, 19]`` onto the factor prior.

    Smooth and monotone in every coordinate (the gated factors are flat where
    they are off). `sample_factors` and the latent map both use it.
    """
    if u.ndim != 2 or u.shape[1] != NUM_FACTORS:
        raise UserError(f"expected [N, {NUM_FACTORS}] normal draws, got {list(u.shape)}")
    p = _std_normal_cdf(u.to(torch.float32))
    cols = []
    for i, f in enumerate(FACTORS):
        q = p[:, i]
        if f.prior == "gated":
            t = ((q - f.gate) / f.ramp).clamp(0.0, 1.0)
            q = t * t * (3.0 - 2.0 * t)
        cols.append(f.low + f.span * q)
    return torch.stack(cols, dim=1).clamp(LOW, HIGH)


def sample_factors(n: int, seed: int, **fixed: float) -> torch.Tensor:
    """``n`` factor vectors from the FaceLab prior, deterministic in `seed`.

    Keyword arguments pin factors, e.g. ``sample_factors(8, 0, glasses=1.0)``.
    """
    seed = check_seed(seed)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise UserError(f"number of faces must be a positive integer, got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    values = from_normal(torch.randn(int(n), NUM_FACTORS, generator=gen))
    if fixed:
        values = from_dict(fixed, base=values)
    return values


def table() -> str:
    """Markdown table of the factors (used in docs/facelab.md)."""
    rows = ["| # | factor | range | meaning | low end | high end | prior |", "|---|---|---|---|---|---|---|"]
    for i, f in enumerate(FACTORS):
        prior = f.prior if f.prior == "uniform" else f"{f.prior} ({f.gate:.0%} off)"
        rows.append(f"| {i} | `{f.name}` | [{f.low:g}, {f.high:g}] | {f.meaning} | {f.low_means} | "
                    f"{f.high_means} | {prior} |")
    return "\n".join(rows)
