"""The baselines section of the audit record: what each method beside the walks found.

`iceaudit.audit.baselines.run_baselines` builds one `Baselines`; the report reads it. A
method that did not run is its record with ``status = "skipped"`` and the ``reason``; a
field the method did not produce is None (left out of the JSON where marked `omitted`).
Free-form parts (the options, a region's figures, Captum's quality checks) stay mappings:
their keys are the method's own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iceaudit.record.codec import omitted


@dataclass
class Rank:
    """Spearman's rho between two rankings of the bank's subspaces."""

    n: int = 0  # subspaces in common
    rho: float | None = None
    p_value: float | None = None
    note: str | None = omitted()  # why rho is None


@dataclass
class PixelBaseline:
    """One Captum pixel-attribution method over the audit's faces."""

    status: str
    reason: str | None = omitted()
    seconds: float | None = omitted()
    seconds_per_face: float | None = omitted()
    regions: dict[str, dict[str, Any]] | None = omitted()  # face part -> share, area_share (ratio, importance)
    region_ranking: list[str] | None = omitted()
    map: str | None = omitted()  # mean attribution map, relative to the audit directory
    quality: dict[str, Any] | None = omitted()  # Captum infidelity / sensitivity_max


@dataclass
class LatentSubspace:
    """Integrated Gradients in S projected on one subspace, averaged over faces."""

    attribution: float
    abs_attribution: float
    share: float
    slope_estimate: float
    abs_slope_estimate: float
    covariant_attribution: float | None = omitted()
    dims_in_s: int | None = omitted()


@dataclass
class LatentBaseline:
    status: str
    reason: str | None = omitted()
    baseline: str | None = omitted()  # the IG baseline in S
    n_steps: int | None = omitted()
    n_faces: int | None = omitted()
    completeness_gap: float | None = omitted()
    subspaces: dict[str, LatentSubspace] | None = omitted()
    ranking: list[str] | None = omitted()
    ranking_by_slope_estimate: list[str] | None = omitted()
    seconds: float | None = omitted()
    seconds_per_face: float | None = omitted()


@dataclass
class AttFindPick:
    """One (style channel, direction) of AttFind's greedy top-k."""

    channel: str
    layer: str | None = None
    index: int | None = None
    position: int | None = None
    direction: str | None = None
    mean_effect: float | None = None
    estimated_flip_share: float | None = None


@dataclass
class BankMatch:
    """The bank subspace closest to a style channel."""

    subspace: str
    latent_overlap: float
    image_cosine: float


@dataclass
class AttFindChannel:
    """A chosen channel, matched against the bank and localised on the face."""

    channel: str
    best_match: BankMatch | None
    mean_effect: float | None
    direction: str | None
    region: str | None
    layer: str | None = None
    index: int | None = None
    explained_by_bank: bool = False
    region_votes: dict[str, float] = field(default_factory=dict)
    walk_strip: str | None = omitted()  # unnamed drivers: the channel's walk, relative to the audit directory


@dataclass
class AttFindClass:
    """Towards one class: the top channels and the share of faces they flip together."""

    n_faces_to_flip: int
    top: list[AttFindPick]
    sufficiency: float
    sufficiency_curve: list[float | None] = field(default_factory=list)


@dataclass
class AttFindBaseline:
    status: str
    reason: str | None = omitted()
    n_faces: int | None = omitted()
    n_channels: int | None = omitted()
    n_evaluated: int | None = omitted()
    threshold: float | None = omitted()
    note: str | None = omitted()
    renders: int | None = omitted()
    classes: dict[str, AttFindClass] | None = omitted()
    channels: list[AttFindChannel] | None = omitted()
    unnamed_drivers: list[AttFindChannel] | None = omitted()
    seconds: float | None = omitted()
    seconds_per_face: float | None = omitted()


@dataclass
class TcavConcept:
    """One subspace's TCAV scores against its random sets, and the test."""

    score: float
    p_adjusted: float
    significant: bool
    scores: list[float | None] = field(default_factory=list)
    p_value: float | None = None
    direction: str | None = None
    cav_accuracy: float | None = None


@dataclass
class TcavCall:
    subspace: str
    walk_significant: bool
    tcav_significant: bool
    same_call: bool
    same_direction: bool | None  # None unless both find an effect


@dataclass
class TcavAgreement:
    n: int
    same_call: int
    both_significant: int
    same_direction: int
    rows: list[TcavCall] = field(default_factory=list)


@dataclass
class TcavBaseline:
    status: str
    reason: str | None = omitted()
    layer: str | None = omitted()
    n_faces: int | None = omitted()
    n_random: int | None = omitted()
    level: float | None = omitted()
    concepts: str | None = omitted()
    random_scores: list[float | None] | None = omitted()
    subspaces: dict[str, TcavConcept] | None = omitted()
    agreement: TcavAgreement | None = omitted()
    seconds: float | None = omitted()


@dataclass
class Agreement:
    """Do the walks, latent attribution and pixel attribution rank the subspaces alike?"""

    pixel_method: str | None = None
    subspace_regions: dict[str, str | None] = field(default_factory=dict)
    walk_vs_latent: Rank | None = None
    walk_vs_latent_slope: Rank | None = None
    walk_vs_region: Rank | None = None
    latent_vs_region: Rank | None = None
    walk_vs_region_by_method: dict[str, Rank | None] = field(default_factory=dict)
    statement: str = ""


@dataclass
class Baselines:
    """Every method run beside the walks (``methods``), with the shared settings."""

    schema: int = 1
    methods: list[str] = field(default_factory=list)
    threshold: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    n_faces: int | None = omitted()
    resolution: int | None = omitted()
    labels: list[str] | None = None  # the parser's face parts (None: no parser)
    maps_npz: str | None = omitted()
    pixel: dict[str, PixelBaseline] = field(default_factory=dict)
    latent: LatentBaseline | None = omitted()
    attfind: AttFindBaseline | None = omitted()
    tcav: TcavBaseline | None = omitted()
    agreement: Agreement | None = omitted()
