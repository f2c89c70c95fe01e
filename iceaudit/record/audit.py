"""The audit record: everything an audit found and how, as typed dataclasses.

summary.json is `AuditRecord.to_json()`; every later stage (report, gate, diff, sweep, the
notebook) reads it back with `read_record` and uses these fields, never the raw JSON. The
fields below are the documentation of the file: a section or field that may be absent
defaults to None, and the report then says what is missing instead of failing. Paths are
relative to the audit directory. Slopes are in decision score per unit of the subspace.

results.parquet (beside it) is the long table of every walk: sample (int), subspace (str),
alpha (float, units), score (float); null walks use subspace ``null:<id>:<k>``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iceaudit.record.baselines import Baselines
from iceaudit.record.codec import empty_as_none, omitted

SCHEMA_VERSION = 1
Layers = list[int | str] | str | None  # W+ layer indices, S layer names, or one name


@dataclass
class ClassifierRecord:
    """The audited classifier and its card."""

    name: str
    path: str | None = None
    sha256: str | None = None
    kind: str | None = None  # "module", "torchscript" or "onnx"
    differentiable: bool | None = None
    positive_class: str | None = None
    threshold: float | None = None  # the decision threshold on the score
    head: str | None = None
    card: dict[str, Any] = field(default_factory=dict)


@dataclass
class GeneratorRecord:
    name: str | None = None
    fingerprint: str | None = None
    resolution: int | None = None


@dataclass
class SubspaceRecord:
    """One audited subspace of the bank, as the walks used it."""

    id: str
    name: str | None = None
    tags: list[str] = field(default_factory=list)  # `protected` marks protected attributes
    unit: str | None = None  # what one unit means
    step_range: list[float] = field(default_factory=list)  # the steps walked
    description: str | None = None
    # the bank's step range, where the walk was clipped to the subspace's measured valid range
    bank_step_range: list[float] | None = omitted()
    space: str | None = omitted()
    layers: Layers = omitted()
    method: str | None = omitted()
    alphas: list[float] | None = omitted()  # the walk grid, in units


@dataclass
class BankRecord:
    name: str | None = None
    path: str | None = None
    hash: str | None = None
    subspaces: list[SubspaceRecord] = field(default_factory=list)


@dataclass
class SettingsRecord:
    """How the audit ran (the science and the run context as summary.json states them)."""

    n_samples: int | None = None
    seed: int | None = None
    psi: float | None = None
    alphas: list[float] | dict[str, list[float]] | None = None  # one grid, or one per subspace
    n_steps: int | None = omitted()
    n_null: int | None = None
    device: str | None = None
    batch_images: int | None = omitted()
    precision: str | None = omitted()
    partial_synthesis: bool | None = omitted()
    bisect_steps: int | None = omitted()
    n_bootstrap: int | None = omitted()
    level: float | None = omitted()


@dataclass(kw_only=True)
class DriverEvidence:
    """What a driver's call rests on beyond its headline numbers. The null figures are random
    directions rescaled to change the image as much as the subspace does."""

    margin_share: float | None = None  # |slope| x range width / median |score - threshold|: the practical size
    median_margin: float | None = None  # median |score - threshold| of the unedited faces
    beats_null: bool | None = None  # Holm-adjusted p below the level (before the practical-size condition)
    end_slope: float | None = None  # end-to-end slope tested against the nulls
    null_sigma: float | None = None  # the nulls' pooled SD (per unit)
    null_df: float | None = None  # its degrees of freedom
    null_slopes: list[float | None] = field(default_factory=list)  # this subspace's null end slopes
    image_change: float | None = None  # mean image change per unit of the walk
    mean_abs_slope: float | None = None  # mean over faces of |per-face slope|
    ci_excludes_zero: bool | None = None
    unit: str | None = None  # what one unit means (the bank's words)
    step_range: list[float] = field(default_factory=list)  # the walked range, in units
    space: str | None = None  # W, W+ or S
    basis_rows: int = 1  # rows of the subspace's basis; only the first (principal) one is walked
    rows_audited: int = 1
    abs_margin_share: float | None = omitted()  # margin_share of the mean |per-face slope|
    up_share: float | None = omitted()  # share of faces whose score rises along the walk
    down_share: float | None = omitted()  # ... and falls (slopes below a tenth of the median |slope| not counted)
    p_size_adjusted: float | None = omitted()  # per-face |score change| vs random edits' (paired, Holm)
    own_effect: float | None = omitted()  # own-criterion SDs per unit at the audited faces
    slope_per_own_sd: float | None = omitted()  # slope / own_effect: score change per SD of its own criterion


@dataclass(kw_only=True)
class Driver:
    """One subspace's effect on the classifier's decision score (ranked: significant first,
    then by |slope|)."""

    subspace: str  # bank subspace id
    name: str | None = None  # defaults to the id
    tags: list[str] = field(default_factory=list)
    slope: float  # mean d(score)/d(unit), signed
    ci_low: float  # bootstrap 95% CI of the slope over faces
    ci_high: float
    mean_abs_change: float | None = None  # mean |score(alpha) - score(0)| over the walk grid
    flip_rate: float  # share of faces whose decision flips within the step range
    monotonicity: float | None = None  # mean Spearman rho of score vs alpha, per face
    heterogeneity: float | None = None  # SD of per-face slopes
    null_abs_slope: float | None = None  # null floor: |slope| of random directions
    p_value: float | None = None  # vs random edits of the same visual size (the null floor)
    p_adjusted: float | None = None  # Holm-adjusted over subspaces
    significant: bool  # the effect claim (`effect`); hand-made and older records: their own call
    effect: bool | None = omitted()  # moving it changes the decision: tested over faces, practically large
    beyond_random: bool | None = omitted()  # specificity: larger than random edits of the same visual size
    mixed_sign: bool | None = omitted()  # the score moves one way for some faces, the other way for others
    p_effect: float | None = omitted()  # mean per-face slope vs 0, over faces
    p_effect_adjusted: float | None = omitted()  # Holm-adjusted over subspaces
    rank: int = 0
    extra: DriverEvidence | None = empty_as_none()  # None only in hand-made records

    def __post_init__(self) -> None:
        if self.name is None:
            self.name = self.subspace

    @property
    def protected(self) -> bool:
        """Tagged as a protected attribute (the fairness section may name more)."""
        return "protected" in self.tags


@dataclass
class WalkStrip:
    """One face walked along one subspace: the frames at ``alphas`` side by side in ``image``."""

    sample: int | None = None
    image: str | None = None
    alphas: list[float] = field(default_factory=list)
    scores: list[float | None] | None = omitted()  # each frame's score (results.parquet has them too)


@dataclass
class FlipStats:
    success_rate: float | None = None  # share of faces that some step within range flips
    median_step: float | None = None  # median |step| (units) of the flips; None when none flips
    n_flipped: int | None = omitted()


@dataclass
class BestEdit:
    """A shown face's smallest flipping edit over all subspaces, with its images."""

    sample: int
    seed: int | None = omitted()
    subspace: str = ""
    step: float = 0.0
    score_before: float | None = None
    score_after: float | None = None
    original: str | None = None
    counterfactual: str | None = None
    diff: str | None = omitted()
    pair: str | None = omitted()


@dataclass
class FaceOutcome:
    sample: int
    seed: int | None = None
    score: float | None = None
    positive: bool | None = None
    flipped_by: list[str] = field(default_factory=list)
    best_subspace: str | None = None
    best_step: float | None = None


@dataclass
class Counterfactuals:
    method: str | None = omitted()
    per_subspace: dict[str, FlipStats] = field(default_factory=dict)
    best: list[BestEdit] = field(default_factory=list)
    per_face: list[FaceOutcome] | None = omitted()


@dataclass
class FairnessFinding:
    subspace: str
    name: str | None = omitted()
    slope: float | None = omitted()
    ci_low: float | None = omitted()
    ci_high: float | None = omitted()
    flip_rate: float | None = omitted()
    significant: bool | None = omitted()
    p_adjusted: float | None = omitted()
    statement: str = ""


@dataclass
class Fairness:
    protected: list[str] = field(default_factory=list)  # defaults to the bank's `protected` tags
    findings: list[FairnessFinding] = field(default_factory=list)


@dataclass
class OwnCriterion:
    """How much one unit of the walk moves the subspace's own criterion (calibrated to ``expected``)."""

    criterion: str | None = None
    effect_per_unit: float | None = None
    expected: float | None = None
    ok: bool | None = None
    measured_at: str | None = omitted()  # "audited faces" or "bank build" (iceaudit.audit.own_units)
    faces: int | None = omitted()  # faces it was measured on, at the audit
    bank_effect_per_unit: float | None = omitted()  # the bank's build-time figure, beside the audit's


@dataclass
class NullTest:
    """One subspace's test against its random directions (slopes per unit of the subspace)."""

    floor: float | None = None
    sigma: float | None = None
    df: float | None = None
    null_slopes: list[float | None] = field(default_factory=list)
    end_slope: float | None = None
    image_change: float | None = None


@dataclass
class NullFloor:
    """Random directions in each subspace's space and layers, matched in image change."""

    test: str | None = omitted()
    n_directions: int | None = None
    n_per_subspace: int | None = omitted()
    quantile: float | None = None
    abs_slope: float | None = None  # the pooled |slope| quantile
    per_subspace: dict[str, NullTest] | None = omitted()


@dataclass
class BaseRate:
    positive: float | None = None
    n_positive: int | None = None
    n: int | None = None
    note: str | None = None


@dataclass
class SanityCheck:
    """The audit rerun on a classifier with re-drawn weights: it should find nothing."""

    n_significant: int | None = omitted()
    significant: list[str] | None = omitted()
    max_abs_slope: float | None = omitted()
    passed: bool | None = None  # None: skipped (see note)
    note: str | None = None


@dataclass
class Validity:
    own_criterion: dict[str, OwnCriterion] | None = omitted()
    leakage: dict[str, dict[str, float | None]] | None = omitted()  # walk id -> other criterion -> per unit
    null_floor: NullFloor | None = omitted()
    base_rate: BaseRate | None = omitted()
    sanity: dict[str, SanityCheck] | None = omitted()  # "randomised_classifier"


@dataclass
class CompileOutcome:
    """Whether --compile was asked for and what it did in the audit's own process (Ray workers
    compile on their own). The numbers do not depend on it (float rounding aside)."""

    requested: bool = False
    used: bool = False  # every network that ran, ran compiled (TorchScript classifiers aside: `skipped`)
    backend: str | None = None  # the torch.compile backend
    compiled: list[str] = field(default_factory=list)  # the calls that ran compiled
    fallback: str | None = None  # why a call ran eager instead (the first compile failure)
    skipped: list[str] = field(default_factory=list)  # left eager by design, with why (a TorchScript classifier)


@dataclass
class Execution:
    """How the walks ran (the numbers do not depend on it)."""

    backend: str | None = None
    workers: int | None = None
    units: int | None = None
    units_from_checkpoint: int | None = None
    shard_faces: int | None = None
    compile: CompileOutcome | None = omitted()  # absent in records written before --compile existed
    memory_format: str | None = omitted()  # the classifier's during the walks: "channels_last" or "contiguous"


@dataclass
class Provenance:
    iceaudit_version: str | None = None
    torch: str | None = None
    numpy: str | None = omitted()
    python: str | None = None
    platform: str | None = None
    command: str | None = None
    seeds: dict[str, Any] = field(default_factory=dict)
    hashes: dict[str, str | None] = field(default_factory=dict)
    card_path: str | None = omitted()
    created: str | None = None
    execution: Execution | None = omitted()
    synthetic_fixture: bool | None = omitted()  # made-up test data: the report says so first


@dataclass(kw_only=True)
class AuditRecord:
    """summary.json (its JSON Schema: `iceaudit.record.schema.SUMMARY`)."""

    classifier: ClassifierRecord | None = omitted()
    generator: GeneratorRecord | None = omitted()
    bank: BankRecord | None = omitted()
    settings: SettingsRecord | None = omitted()
    verdict: str = ""  # one paragraph; empty: the report composes one
    drivers: list[Driver]
    walk_strips: dict[str, list[WalkStrip]] = field(default_factory=dict)
    counterfactuals: Counterfactuals | None = omitted()
    fairness: Fairness | None = omitted()
    validity: Validity | None = omitted()
    baselines: Baselines | None = empty_as_none()  # written as {} when the audit ran none
    provenance: Provenance
    schema_version: int = SCHEMA_VERSION

    def driver(self, subspace: str) -> Driver:
        """The driver record of one subspace id."""
        for d in self.drivers:
            if d.subspace == subspace:
                return d
        raise KeyError(subspace)

    @property
    def protected(self) -> list[str]:
        """Protected subspace ids: tagged in the bank or named by the fairness section."""
        named = set(self.fairness.protected) if self.fairness else set()
        return [d.subspace for d in self.drivers if d.protected or d.subspace in named]

    def units(self) -> dict[str, str]:
        """Subspace id -> what one unit means (from the bank section)."""
        return {s.id: s.unit for s in (self.bank.subspaces if self.bank else []) if s.unit}
