"""Concepts from examples: a subspace for an attribute the user names by labelling faces.

    examples = read_examples(labels="smiling.csv")            # seed,label rows
    bank, report = add_concept(G, bank, examples, ConceptSpec(id="smiling", name="Smiling"), eyes)

The faces are the generator's own, named by seed with the official convention
(`iceaudit.stylegan2.generate.z_from_seeds`), untruncated (psi 1), as `iceaudit bank sheet
--seeds` and `iceaudit generate --seeds ... --psi 1` draw them, so a label is a statement
about one latent.

- ``svm`` (InterFaceGAN): a linear soft-margin SVM (L2 penalty, squared hinge, the primal
  solved by L-BFGS) separates the positives' latents from the negatives' in W, W+ or S;
  the walk is the boundary's unit normal, pointing to the positives.
- ``attribute`` (StyleSpace): the style channels most consistently shifted in the
  positives (|mean z| / SD z against all sampled faces); the walk is their signed sum.
- ``ice`` (ICE): no labels needed; the user's attribute scorer becomes a criterion and the
  walk is the strongest direction of its JᵀJ over the bank's discovery faces, inside the
  null space of the criteria of the subspaces it must not move (`orthogonal_to`).

``svm`` and ``attribute`` can be made orthogonal to named subspaces of the same space
(conditional editing: "smiling, not mouth open"); ``ice`` holds the named subspaces'
criteria still instead, in any space. One unit is one SD, across sampled faces, of the latent
coordinate along the walk (the boundary score's SD for ``svm``). The concept is validated
like every other subspace (leakage onto the bank's criteria, pixel drift, the truth hook
on FaceLab) plus how well the direction separates held-out examples (k-fold accuracy),
and it enters the bank with the examples' hash.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from iceaudit.bank.format import Bank, Subspace
from iceaudit.bank.latent import LatentSpace
from iceaudit.bank.validate import Thresholds, calibrated_scales, leakage_exempt, validate_subspace
from iceaudit.errors import UserError

if TYPE_CHECKING:  # annotations only
    from iceaudit.criteria.base import Eyes
    from iceaudit.stylegan2.networks import Generator

METHODS = ("svm", "attribute", "ice")
MIN_PER_CLASS = 5
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_TRUE = {"1", "true", "yes", "y", "pos", "positive", "+"}
_FALSE = {"0", "false", "no", "n", "neg", "negative", "-"}


@dataclass(frozen=True)
class Examples:
    """Labelled faces: seeds (official seed -> z) and whether each shows the concept."""

    seeds: tuple[int, ...]
    labels: tuple[bool, ...]

    def __post_init__(self) -> None:
        if len(self.seeds) != len(self.labels):
            raise UserError("examples: as many labels as seeds are needed")
        n_pos = sum(self.labels)
        n_neg = len(self.labels) - n_pos
        if min(n_pos, n_neg) < MIN_PER_CLASS:
            raise UserError(f"examples: {n_pos} positive and {n_neg} negative faces; at least {MIN_PER_CLASS} "
                            "of each are needed to fit and check a direction",
                            hint="Label more faces (`iceaudit bank sheet --seeds 0-199 --out sheet.html`).")

    @property
    def digest(self) -> str:
        """sha256 of the sorted `seed,label` lines: the examples' identity in the bank."""
        lines = sorted(f"{s},{int(y)}" for s, y in zip(self.seeds, self.labels))
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    @property
    def counts(self) -> tuple[int, int]:
        return sum(self.labels), len(self.labels) - sum(self.labels)


def _label(text: str, where: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise UserError(f"{where}: label {text!r} is not one of 1/0, true/false, yes/no, pos/neg")


def _seed(text: str, where: str) -> int:
    from iceaudit.stylegan2.generate import MAX_SEED

    t = text.strip()
    if not re.fullmatch(r"\d+", t) or int(t) > MAX_SEED:
        raise UserError(f"{where}: {text!r} is not a seed (an integer 0..{MAX_SEED})")
    return int(t)


def _rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the examples ({err})") from None
    return [row for row in csv.reader(text.splitlines()) if row and any(c.strip() for c in row)
            and not row[0].lstrip().startswith("#")]


def _seeds_of(path: Path) -> list[int]:
    """Seeds listed by a file (one per line, or a `seed` column) or named by a folder's images
    (any file name with digits: `seed0042.png`, `42.jpg`), as sorted from a labelling sheet."""
    if path.is_dir():
        seeds = []
        for f in sorted(path.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                digits = re.findall(r"\d+", f.stem)
                if not digits:
                    raise UserError(f"{f}: the file name names no seed (expected e.g. seed0042.png)")
                seeds.append(_seed(digits[-1], str(f)))
        if not seeds:
            raise UserError(f"{path}: no face images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return seeds
    if not path.is_file():
        raise UserError(f"{path}: no such file or folder of examples")
    rows = _rows(path)
    column = 0
    if rows and rows[0][0].strip().lower() == "seed" or (rows and "seed" in [c.strip().lower() for c in rows[0]]):
        column = [c.strip().lower() for c in rows[0]].index("seed")
        rows = rows[1:]
    return [_seed(r[column], f"{path}:{i + 1}") for i, r in enumerate(rows)]


def read_examples(*, labels: str | Path | None = None, positives: str | Path | None = None,
                  negatives: str | Path | None = None) -> Examples:
    """Labelled seeds from a `seed,label` CSV, or from lists (files or image folders) of positive
    and negative seeds.

    Args:
        labels: CSV with columns `seed` and `label` (1/0, true/false, yes/no, pos/neg).
        positives: seeds showing the concept: a text/CSV file or a folder of images named by seed.
        negatives: seeds not showing it, likewise.
    """
    if (labels is None) == (positives is None and negatives is None):
        raise UserError("give the examples either as --labels CSV or as --positives and --negatives")
    pairs: list[tuple[int, bool]] = []
    if labels is not None:
        path = Path(labels)
        if not path.is_file():
            raise UserError(f"{path}: no such labels file")
        rows = _rows(path)
        header = [c.strip().lower() for c in rows[0]] if rows else []
        if "seed" not in header or "label" not in header:
            raise UserError(f"{path}: the first row must name the columns `seed` and `label`")
        si, li = header.index("seed"), header.index("label")
        for i, r in enumerate(rows[1:], start=2):
            if len(r) <= max(si, li):
                raise UserError(f"{path}:{i}: expected a seed and a label, got {','.join(r)!r}")
            pairs.append((_seed(r[si], f"{path}:{i}"), _label(r[li], f"{path}:{i}")))
    else:
        if positives is None or negatives is None:
            raise UserError("--positives and --negatives go together")
        pairs = [(s, True) for s in _seeds_of(Path(positives))] + [(s, False) for s in _seeds_of(Path(negatives))]
    seen: dict[int, bool] = {}
    for s, y in pairs:
        if seen.get(s, y) != y:
            raise UserError(f"examples: seed {s} is labelled both positive and negative")
        seen[s] = y
    return Examples(tuple(seen), tuple(seen.values()))


def fit_svm(x: torch.Tensor, y: torch.Tensor, c: float = 1.0, iters: int = 200, form: str = "auto") -> torch.Tensor:
    """Unit normal [D] of a linear soft-margin SVM (L2 penalty, squared hinge), pointing to y = 1.

    With fewer examples than dimensions (CAVs on a conv layer: tens of faces, 10⁴–10⁵
    activations) the normal lies in the examples' span, w = xᵀβ, and the same objective is
    solved there exactly (`_svm_in_span`); otherwise L-BFGS over the D weights. Both reach
    the same boundary (tested).

    Args:
        x: [n, D] latents (or activations).
        y: [n] bool labels.
        c: the misclassification cost (LinearSVC's C); features are centred and scaled by
            their overall RMS only, so the geometry of the latent space is kept.
        iters: L-BFGS iterations of the primal form (Newton steps of the span form).
        form: "primal", "span", or "auto" (span when n < D).
    """
    if form not in ("auto", "primal", "span"):
        raise ValueError(f"form must be auto, primal or span, not {form!r}")
    x = x.double()
    x = (x - x.mean(0)) / x.pow(2).mean().sqrt().clamp_min(1e-12)
    t = y.double() * 2 - 1
    if form == "span" or (form == "auto" and x.shape[0] < x.shape[1]):
        normal = x.T @ _svm_in_span(x @ x.T, t, c, iters)
    else:
        normal = _svm_primal(x, t, c, iters)
    if normal.norm() == 0:
        raise UserError("the SVM found no boundary between the positives and the negatives")
    return (normal / normal.norm()).float()


def _svm_primal(x: torch.Tensor, t: torch.Tensor, c: float, iters: int) -> torch.Tensor:
    """0.5 |w|² + c Σ max(0, 1 − t(x·w + b))² by L-BFGS; returns w."""
    p = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([p], max_iter=iters, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = 0.5 * p[:-1].pow(2).sum() + c * (1 - t * (x @ p[:-1] + p[-1])).clamp_min(0).pow(2).sum()
        value.backward()
        return value

    opt.step(loss)
    return p.detach()[:-1]


def _svm_in_span(gram: torch.Tensor, t: torch.Tensor, c: float, steps: int) -> torch.Tensor:
    """The same objective over w = xᵀβ (gram = xxᵀ), by finite Newton steps on the active set
    (the examples inside the margin). With the active set A fixed, the stationary point has β
    zero outside A and solves (K_AA + I/2c) β_A + b = t_A, Σ β_A = 0; each step moves towards
    it (halving while the objective does not fall) until the active set stops changing.
    Returns β."""
    n = gram.shape[0]

    def objective(beta: torch.Tensor, b: torch.Tensor) -> float:
        f = gram @ beta + b
        return float(0.5 * beta @ (gram @ beta) + c * (1 - t * f).clamp_min(0).pow(2).sum())

    beta, b = torch.zeros(n, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    value = objective(beta, b)
    for _ in range(steps):
        active = t * (gram @ beta + b) < 1
        m = int(active.sum())
        system = torch.zeros(m + 1, m + 1, dtype=torch.float64)
        system[:m, :m] = gram[active][:, active] + torch.eye(m, dtype=torch.float64) / (2 * c)
        system[:m, m] = system[m, :m] = 1.0
        solution = torch.linalg.lstsq(system, torch.cat([t[active], t.new_zeros(1)])).solution
        target_beta = torch.zeros_like(beta)
        target_beta[active] = solution[:m]
        step = 1.0
        while True:
            new_beta, new_b = beta + step * (target_beta - beta), b + step * (solution[m] - b)
            new_value = objective(new_beta, new_b)
            if new_value <= value or step < 1e-8:
                break
            step /= 2
        done = value - new_value <= 1e-13 * max(1.0, abs(value))
        beta, b, value = new_beta, new_b, min(value, new_value)
        if done:
            break
    return beta


@dataclass
class ConceptSpec:
    """What the user names and how the direction is found."""

    id: str
    name: str | None = None
    description: str = ""
    tags: list[str] = field(default_factory=list)
    method: str = "svm"  # svm | attribute | ice
    space: str = "W"  # W | W+ | S (attribute: S)
    layers: list = field(default_factory=list)  # W+: [first, last]; S: style layer names ([] = all conv)
    orthogonal_to: list[str] = field(default_factory=list)  # bank subspaces to stay orthogonal to
    channels: int = 8  # attribute: style channels kept
    step_range: tuple[float, float] = (-2.0, 2.0)
    c: float = 1.0  # svm: misclassification cost

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.id):
            raise UserError(f"concept id {self.id!r}: letters, digits, `_`, `.`, `-` (up to 64), starting alphanumeric")
        if self.method not in METHODS:
            raise UserError(f"unknown concept method {self.method!r} (use one of {', '.join(METHODS)})")
        if self.method == "attribute" and self.space != "S":
            raise UserError("the attribute method finds style channels: it needs --space S")


def _direction(G: Generator, spec: ConceptSpec, space: LatentSpace, ws: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        x = space.encode(ws)
    if spec.method == "svm":
        return fit_svm(x, y, c=spec.c)
    from iceaudit.bank.stylespace import attribute_channels, style_stats

    stats = style_stats(G, ws, space.layers)  # all labelled faces are the reference population
    top = attribute_channels(G, ws[y], stats, top=spec.channels)
    offset = {name: o for name, o in zip(space.layers, np.cumsum([0, *space._sizes[:-1]]).tolist())}
    v = torch.zeros(space.dim)
    for layer, ch, score, mean_z in top:
        v[offset[layer] + ch] = float(np.sign(mean_z)) * float(stats.std[offset[layer] + ch])
    return v / v.norm()


def _ice_direction(spec: ConceptSpec, space: LatentSpace, scorer: dict, bank: Bank, eyes: Eyes,
                   ws: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The scorer's strongest ICE direction with the `orthogonal_to` subspaces' criteria suppressed
    (their JᵀJ null spaces), and the figures a reviewer checks it by."""
    from iceaudit.bank.ice import JacobianMethod, compute_jtj, ice_subspace
    from iceaudit.criteria.spec import build_criterion

    criteria = {"concept": build_criterion(scorer, eyes)}
    for sid in spec.orthogonal_to:
        if not bank[sid].criterion:
            raise UserError(f"--orthogonal-to {sid}: that subspace has no criterion for ICE to hold still "
                            f"(method {bank[sid].method})", hint="Use --method svm for it, or name a criterion subspace.")
        criteria[sid] = build_criterion(json.loads(bank[sid].criterion), eyes)
    # reverse mode: the scorer has one output, and forward mode does not pass FAN's grid_sample
    jtj = compute_jtj(space, criteria, ws, JacobianMethod("exact", exact_mode="reverse", chunk=16))
    res = ice_subspace(jtj["concept::act"], [jtj[f"{sid}::act"] for sid in spec.orthogonal_to], max_rank=1)
    if res.basis.shape[0] == 0:
        raise UserError(f"concept {spec.id!r}: no direction moves the scorer while "
                        f"{', '.join(spec.orthogonal_to) or 'nothing'} stays put (null dim {res.null_dim})")
    return res.basis[0], {"eigenvalue": float(res.eigenvalues[0]), "null_dim": res.null_dim,
                          "faces": int(ws.shape[0])}


def _orthogonalise(v: torch.Tensor, bank: Bank, spec: ConceptSpec, space: LatentSpace) -> torch.Tensor:
    for sid in spec.orthogonal_to:
        other = bank[sid]
        same = other.space == space.space and (space.space == "W" or list(other.layers) == list(space.layers)
                                               or (space.space == "W+" and other.space == "W+"))
        if not same or other.basis.shape[1] != v.shape[0]:
            raise UserError(f"cannot keep concept {spec.id!r} orthogonal to {sid!r}: it lives in {other.space} "
                            f"{other.layers}, the concept in {space.space} {space.layers}",
                            hint="Orthogonalise against subspaces of the same space and layers.")
        q, _ = torch.linalg.qr(other.basis.double().T)  # orthonormal span, [D, k]
        v = (v.double() - q @ (q.T @ v.double())).float()
    if float(v.norm()) < 1e-6:
        raise UserError(f"concept {spec.id!r} lies inside {', '.join(spec.orthogonal_to)}: nothing is left orthogonal")
    return v / v.norm()


def separation(x: torch.Tensor, y: torch.Tensor, fit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               folds: int = 5, seed: int = 0) -> float:
    """k-fold accuracy of the direction as a classifier of held-out examples (the midpoint of the
    two classes' mean projections as the threshold)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    hits = 0
    for k in range(folds):
        test = order[k::folds]
        train = torch.ones(len(y), dtype=torch.bool)
        train[test] = False
        v = fit(x[train], y[train])
        p = x @ v
        cut = (p[train][y[train]].mean() + p[train][~y[train]].mean()) / 2
        sign = 1.0 if p[train][y[train]].mean() >= p[train][~y[train]].mean() else -1.0
        hits += int(((sign * (p[test] - cut) > 0) == y[test]).sum())
    return hits / len(y)


def _scorer_digest(scorer: str) -> str:
    """sha256 of a scorer file (its identity in the bank), or the shipped estimator's name."""
    path = Path(scorer)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else scorer


def add_concept(G: Generator, bank: Bank, examples: Examples | None, spec: ConceptSpec, eyes: Eyes, *,
                scorer: str | None = None, validation_faces: int = 32, calibration_faces: int = 64, seed: int | None = None,
                thresholds: Thresholds = Thresholds(), min_accuracy: float = 0.7,
                truth: Callable | None = None, truth_factor: str | None = None,
                leakage_exempt_ids: Sequence[str] = (), exempt_reason: str = "",
                keep_failing: bool = False, replace_existing: bool = False) -> tuple[Bank, dict]:
    """Fit a concept's direction from labelled seeds (or, for ``ice``, from a scorer), calibrate
    and validate it, and return the bank with it appended (a failing concept is not added unless
    ``keep_failing``).

    Args:
        G: the bank's generator (checked against the bank's fingerprint).
        bank: the bank to extend (not modified; a new `Bank` is returned).
        examples: the labelled seeds (``svm`` and ``attribute`` need them; for ``ice`` they are
            optional and, when given, only checked: held-out separation along the direction).
        spec: the concept's id, words, method, space and orthogonality constraints.
        eyes: landmark model and parser of the bank's criteria (for the leakage check).
        validation_faces, calibration_faces, seed: faces for validation and the unit
            (default seed: the bank's seed + 2 and + 1, the build's convention; ``ice``
            discovers on the bank's own discovery faces, seed + 0).
        scorer: an attribute scorer (a TorchScript image -> score file, or `facelab-age` /
            `facelab-beard`): one unit becomes one SD of its score, and validation checks
            the concept's own effect on it. Without one, one unit is one SD of the latent
            coordinate along the direction and only leakage, drift and separation are checked.
            ``ice`` needs one: it is the criterion.
        thresholds: the validation thresholds; min_accuracy: least k-fold accuracy.
        truth, truth_factor: FaceLab's factor reader and the factor the concept should lead.
        leakage_exempt_ids: bank subspaces the concept may move (a concept that names the same
            attribute as a shipped subspace moves its criterion by design): still measured and
            stored, not held to the leakage threshold; ``exempt_reason`` is required with them
            and kept in the manifest for a reviewer.
        keep_failing: add it even when validation fails (marked `passed: false`).
        replace_existing: replace a subspace of the same id instead of refusing.

    Returns:
        (the new bank, the concept's validation report).
    """
    from iceaudit.bank.build import bank_latents
    from iceaudit.bank.calibrate import calibrate, latent_sd
    from iceaudit.criteria.base import memoize
    from iceaudit.criteria.spec import Measured, spec_id
    from iceaudit.stylegan2.generate import z_from_seeds

    bank.check_generator(G.fingerprint())
    if spec.method == "ice" and scorer is None:
        raise UserError("--method ice needs a --scorer: ICE finds the direction that moves it",
                        hint="Give an image -> score TorchScript file, or use --method svm with labelled faces.")
    if spec.method != "ice" and examples is None:
        raise UserError(f"--method {spec.method} fits labelled faces: give --labels, or --positives and --negatives")
    if spec.id in bank.ids and not replace_existing:
        raise UserError(f"bank {bank.name!r} already has a subspace {spec.id!r}",
                        hint="Choose another --id, or pass --replace to refit it.")
    for flag, ids in (("--orthogonal-to", spec.orthogonal_to), ("--leakage-exempt", leakage_exempt_ids)):
        missing = [s for s in ids if s not in bank.ids]
        if missing:
            raise UserError(f"{flag} names {', '.join(missing)}, not in bank {bank.name!r} (it has: {', '.join(bank.ids)})")
    if leakage_exempt_ids and not exempt_reason.strip():
        raise UserError("--leakage-exempt needs a --reason a reviewer can read (why may this concept move them?)")
    space = LatentSpace(G, spec.space, list(spec.layers))
    base_seed = int(bank.meta.get("seed", 0)) if seed is None else int(seed)
    eyes = memoize(eyes)
    spec_c = None if scorer is None else {"kind": "estimator", "model": str(scorer)}
    x = y = None
    if examples is not None:
        with torch.no_grad():
            ws = G.mapping(z_from_seeds(list(examples.seeds), G.z_dim), None)
            x = space.encode(ws)
        y = torch.tensor(examples.labels)
    discovery: dict = {}
    if spec.method == "ice":
        faces = bank.meta.get("faces")
        n_disc = int(faces.get("discovery", 8)) if isinstance(faces, dict) else int(faces or 8)
        ws_disc = bank_latents(G, n_disc, base_seed)
        v, discovery = _ice_direction(spec, space, spec_c, bank, eyes, ws_disc)  # held by their criteria
    else:
        v = _orthogonalise(_direction(G, spec, space, ws, y), bank, spec, space)
        if float((x[y] @ v).mean()) < float((x[~y] @ v).mean()):
            v = -v  # + points to the positives
    ws_cal = bank_latents(G, calibration_faces, base_seed + 1)
    sub = Subspace(id=spec.id, name=spec.name or spec.id, description=spec.description, tags=list(spec.tags),
                   space=space.space, layers=list(space.layers), basis=v[None].contiguous(), unit="", unit_norm=1.0,
                   step_range=spec.step_range, method=f"concept-{spec.method}", criterion="")
    own = None
    if spec_c is not None:  # calibrated and validated on the scorer, like a recipe's criterion
        own = Measured(spec_c, eyes)
        calibrated, cal = calibrate(G, sub, own, ws_cal)
        if not cal.unit_norm < float("inf"):
            raise UserError(f"the scorer {scorer!r} does not change along the concept's direction (slope 0)")
        # labelled concepts keep + towards the positives (a scorer that falls towards them is
        # reported, not obeyed); an ICE concept's + raises its scorer
        sub = replace(calibrated, basis=calibrated.basis if examples is None else sub.basis, criterion=spec_id(spec_c))
        calibration = {"scorer": str(scorer), **cal.figures(),
                       "scorer_falls_towards_positives": cal.flipped and examples is not None}
    else:
        sd = latent_sd(G, sub, ws_cal)
        sub = replace(sub, unit_norm=sd, unit=f"1 SD ({sd:.4g}) across {calibration_faces} sampled faces of the "
                                              f"latent coordinate along the {spec.method} direction (towards the positives)")
        calibration = {"sd_latent": sd}

    manifold = None
    if bank.meta.get("manifold"):  # the bank's walks were bounded: bound the concept's the same way
        from iceaudit.bank.manifold import ManifoldSettings, with_valid_ranges

        sub = with_valid_ranges(G, [replace(sub, validation={"calibration": calibration})],
                                ManifoldSettings(**bank.meta["manifold"]),
                                measures={sub.id: own} if own is not None else None)[0]
        manifold = sub.validation["manifold"]
    measures = {s.id: Measured(json.loads(s.criterion), eyes) for s in bank.subspaces
                if s.criterion and s.id != spec.id}
    if own is not None:
        measures[sub.id] = own
    ws_val = bank_latents(G, validation_faces, base_seed + 2)
    scales = {k: v for k, v in calibrated_scales(bank.subspaces).items() if k != spec.id}
    if own is not None:
        scales[sub.id] = calibration["sd_measure"]
    report = validate_subspace(G, sub, sub.id, measures, ws_val, thresholds=thresholds, truth=truth,
                               truth_factor=truth_factor,
                               ignore=leakage_exempt(sub.id, measures, list(leakage_exempt_ids)), scales=scales)
    if leakage_exempt_ids:
        report["leakage_exempt_reason"] = exempt_reason.strip()
    report["calibration"] = calibration
    if manifold is not None:
        report["manifold"] = manifold
    if discovery:
        report["ice"] = discovery
    provenance = {"method": spec.method, "orthogonal_to": list(spec.orthogonal_to)}
    if scorer is not None:
        provenance["scorer_sha256"] = _scorer_digest(str(scorer))
    if examples is not None:
        final = sub.basis[0]

        def fit(xs, ys):
            if spec.method == "svm":
                return _orthogonalise(fit_svm(xs, ys, c=spec.c), bank, spec, space)
            return final  # not refitted per fold: the accuracy is in-sample for `attribute` and `ice`

        accuracy = separation(x, y, fit)
        report["separation"] = {"accuracy": accuracy, "folds": 5, "min_accuracy": min_accuracy,
                                "in_sample": spec.method != "svm"}
        if accuracy < min_accuracy:
            report["reasons"].append(f"the direction separates held-out examples at {accuracy:.0%} "
                                     f"(at least {min_accuracy:.0%}): the labels and the latent disagree")
            report["passed"] = False
        n_pos, n_neg = examples.counts
        provenance.update(examples_sha256=examples.digest, positives=n_pos, negatives=n_neg,
                          seeds="official: z = RandomState(seed).randn(1, z_dim)")
    report["concept"] = provenance
    sub = replace(sub, validation=report, verified=bool(report["passed"]))
    if not report["passed"] and not keep_failing:
        return bank, report
    subspaces = [s for s in bank.subspaces if s.id != spec.id] + [sub]
    concepts = [c for c in bank.meta.get("concepts", []) if c.get("id") != spec.id]
    concepts.append({"id": spec.id, **report["concept"]})
    return replace(bank, subspaces=subspaces, meta={**bank.meta, "concepts": concepts}), report


def save_concept_bank(bank: Bank, out: str | Path, report: dict, *, previous: str | Path | None = None) -> Path:
    """Write the extended bank to ``out`` and its validation.json: the previous bank's reports
    (from ``previous``, the bank that was extended) with the concept's added.

    Args:
        bank: the bank `add_concept` returned.
        out: the bank directory to write.
        report: the concept's validation report.
        previous: the directory of the bank that was extended.
    """
    from iceaudit.atomic import write_text
    from iceaudit.bank.format import save_bank

    reports = {}
    old = Path(previous or out) / "validation.json"
    if old.is_file():
        try:
            reports = json.loads(old.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            reports = {}  # the manifest holds each subspace's validation too; this file is a copy
    sid = bank.meta["concepts"][-1]["id"]
    reports[sid] = report
    save_bank(bank, out)
    write_text(Path(out) / "validation.json", json.dumps(reports, indent=2, default=float) + "\n")
    return Path(out)


def labelling_sheet(G: Generator, seeds: Sequence[int], path: str | Path, *, cell: int = 128,
                    title: str = "Label these faces") -> Path:
    """An HTML page of numbered faces (one per seed, official seed -> z) with a check box each and
    a button that downloads `seed,label` CSV for `iceaudit bank add-concept --labels`."""
    import base64
    import html
    import io

    from PIL import Image

    from iceaudit.atomic import write_text
    from iceaudit.stylegan2.generate import generate_images

    images = generate_images(G, list(seeds))
    cells = []
    for s, img in zip(seeds, images):
        buf = io.BytesIO()
        Image.fromarray(img.numpy()).resize((cell, cell), Image.LANCZOS).save(buf, format="PNG")
        data = base64.b64encode(buf.getvalue()).decode()
        cells.append(f'<label class="face"><img src="data:image/png;base64,{data}" alt="seed {s}">'
                     f'<span><input type="checkbox" data-seed="{s}"> seed {s}</span></label>')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} .grid{{display:flex;flex-wrap:wrap;gap:8px}}
.face{{display:flex;flex-direction:column;align-items:center;font-size:13px;border:1px solid #ccc;padding:4px}}
.face img{{width:{cell}px;height:{cell}px}} button{{font-size:15px;margin:1em 0}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Tick every face that shows the concept; unticked faces are the negatives. Then save the CSV and run
<code>iceaudit bank add-concept --labels labels.csv ...</code>. Seeds follow the official convention
and faces are untruncated (the same faces as <code>iceaudit generate --seeds ... --psi 1</code>). {len(seeds)} faces.</p>
<button id="save">Save labels.csv</button>
<div class="grid">{''.join(cells)}</div>
<script>
document.getElementById('save').onclick = function () {{
  var rows = ['seed,label'];
  document.querySelectorAll('input[data-seed]').forEach(function (b) {{ rows.push(b.dataset.seed + ',' + (b.checked ? 1 : 0)); }});
  var a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([rows.join('\\n') + '\\n'], {{type: 'text/csv'}}));
  a.download = 'labels.csv'; a.click();
}};
</script></body></html>
"""
    return write_text(Path(path), page)
