"""Build a subspace bank from a recipe: discover, calibrate, validate, save.

    bank = build_bank(G, load_recipe("ffhq"), eyes, out="subspace_bank/ffhq-config-f")

Faces are drawn from fixed seeds (``[bank] seed``): discovery faces (seed),
calibration faces (seed + 1), validation faces (seed + 2), so the same recipe,
generator and eyes give the same bases. ICE subspaces that share a latent space
share one JᵀJ computation (cached on disk when ``cache_dir`` is given).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from iceaudit.atomic import write_text
from iceaudit.bank import correlation, pca, regression, stylespace
from iceaudit.bank.calibrate import calibrate, latent_sd, orient
from iceaudit.bank.format import Bank, Subspace, save_bank
from iceaudit.bank.manifold import settings_from as manifold_settings, with_valid_ranges
from iceaudit.bank.ice import JacobianMethod, compute_jtj, ice_subspace
from iceaudit.bank.latent import LatentSpace
from iceaudit.bank.recipe import Recipe, SubspaceRecipe
from iceaudit.bank.validate import Thresholds, calibrated_scales, leakage_exempt, validate_subspace
from iceaudit.criteria.base import Eyes, memoize
from iceaudit.criteria.spec import Measured, build_criterion, spec_id
from iceaudit.errors import UserError

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


class Progress:
    """Progress hooks; the CLI passes a rich-based one. Default: silent."""

    def stage(self, label: str, total: float) -> Callable[[float], None]:
        return lambda n=1: None

    def note(self, message: str) -> None:
        pass


@dataclass
class BuildResult:
    bank: Bank
    reports: dict[str, dict] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def bank_latents(G: Generator, n: int, seed: int, psi: float = 1.0) -> torch.Tensor:
    """ws [n, num_ws, w_dim] for bank building: one torch stream seeded once per face set.

    Not the audit's convention (`iceaudit.audit.sample.sample_faces`: one NumPy seed per face, as
    the official code draws z): the shipped banks were built, and are rebuilt bit for bit, with
    this one (and it draws other faces than an audit of the same seed).
    """
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, G.z_dim, generator=g)
    with torch.no_grad():
        return G.mapping(z, None, psi=psi)


def eyes_tag(eyes: Eyes) -> str:
    """A fingerprint of the eyes' weights (so cached JᵀJ never mixes eyes)."""
    h = hashlib.sha256()
    for part in (eyes.landmarks, eyes.parser):
        h.update(type(part).__name__.encode())
        part = getattr(part, "model", part)  # unwrap Memo
        module = part if isinstance(part, torch.nn.Module) else getattr(part, "net", None)
        if isinstance(module, torch.nn.Module):
            for k, v in sorted(module.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _split_suppressor(item) -> tuple[dict | None, str]:
    if item == "self":
        return None, "sup"
    if isinstance(item, dict):
        spec = dict(item)
        part = spec.pop("part", "act")
        if part not in ("act", "sup", "both"):
            raise UserError(f"suppressor part must be act, sup or both: {item}")
        return spec, part
    raise UserError(f"suppressor must be \"self\" or a criterion table, not {item!r}")


def _ice_group(G, recipe_subs: list[SubspaceRecipe], eyes: Eyes, ws, *, method: JacobianMethod, cache_dir, tag,
               progress):
    first = recipe_subs[0]
    space = LatentSpace(G, first.space, list(first.layers))
    criteria = {}
    for sr in recipe_subs:
        criteria[spec_id(sr.criterion)] = build_criterion(sr.criterion, eyes)
        for item in sr.suppress:
            spec, _ = _split_suppressor(item)
            if spec is not None:
                criteria[spec_id(spec)] = build_criterion(spec, eyes)
    tick = progress.stage(f"JᵀJ in {space.space} ({space.dim} dims, {len(criteria)} criteria)", ws.shape[0] * space.dim)
    jtj = compute_jtj(space, criteria, ws, method, cache_dir=cache_dir, cache_tag=tag, progress=tick)
    out = {}
    for sr in recipe_subs:
        cid = spec_id(sr.criterion)
        sups = []
        for item in sr.suppress:
            spec, part = _split_suppressor(item)
            key = cid if spec is None else spec_id(spec)
            sups += [jtj[f"{key}::{p}"] for p in (("act", "sup") if part == "both" else (part,))]
        th = {"r": 1e-3, "t": 1e-2, "cos": 0.99, **sr.thresholds}
        res = ice_subspace(jtj[f"{cid}::act"], sups, r=th["r"], t=th["t"], cos=th["cos"], max_rank=sr.max_rank)
        out[sr.id] = (space, res, th)
    return out


def _thresholds(recipe: Recipe, sr: SubspaceRecipe) -> Thresholds:
    """The recipe's [validation] thresholds, with this subspace's own `validation = {...}` on top."""
    over = dict(sr.options.get("validation", {}))
    unknown = sorted(set(over) - set(Thresholds.__dataclass_fields__))
    if unknown:
        raise UserError(f"subspace {sr.id}: unknown validation threshold(s) {', '.join(unknown)}; "
                        f"known: {', '.join(Thresholds.__dataclass_fields__)}")
    if over and not sr.options.get("validation_reason"):
        raise UserError(f"subspace {sr.id}: a `validation` override needs a `validation_reason` a reviewer can read")
    return Thresholds(**{**recipe.validation, **over})


def _regression_options(recipe: Recipe, sr: SubspaceRecipe) -> tuple[list[str], int]:
    """A regression subspace's `hold` (other recipe subspaces with a criterion) and `pool` (faces), checked."""
    hold, pool = sr.options.get("hold", []), sr.options.get("pool", 2000)
    if not isinstance(hold, list):
        raise UserError(f"subspace {sr.id}: hold must be a list of subspace ids, e.g. hold = [\"brows\"]")
    with_criterion = {o.id for o in recipe.subspaces if o.criterion is not None and o.id != sr.id}
    for hid in hold:
        if hid not in with_criterion:
            raise UserError(f"subspace {sr.id}: hold = [{hid!r}] must name another recipe subspace with a criterion")
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise UserError(f"subspace {sr.id}: pool must be a whole number of sampled faces, got {pool!r}")
    return hold, pool


def _subspace(sr: SubspaceRecipe, space: str, layers, basis, method: str, eigen=(), criterion: str = "", **kw) -> Subspace:
    return Subspace(
        id=sr.id, name=sr.name, description=sr.description, tags=list(sr.tags), space=space,
        layers=list(layers), basis=basis.float().contiguous(), unit="", unit_norm=1.0,
        step_range=sr.step_range, method=method, criterion=criterion,
        eigenvalues=[float(e) for e in eigen], verified=sr.verified, **kw,
    )


def build_bank(
    G: Generator,
    recipe: Recipe,
    eyes: Eyes,
    *,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    faces: int | None = None,
    identity: Callable | None = None,
    truth: Callable | None = None,
    keep_failing: bool = False,
) -> BuildResult:
    progress = progress or Progress()
    untargeted = []  # measures exempt as leakage *targets* (with a reason): still measured and stored
    for sr in recipe.subspaces:  # a bad override fails now, not after minutes of discovery
        _thresholds(recipe, sr)
        if sr.method == "regression":
            _regression_options(recipe, sr)
        if sr.options.get("leakage_target", True) is False:
            if not sr.options.get("leakage_target_reason"):
                raise UserError(f"subspace {sr.id}: `leakage_target = false` needs a `leakage_target_reason`")
            untargeted.append(sr.id)
    manifold = manifold_settings(recipe.bank)  # a bad key fails now, not after discovery
    seed = int(recipe.setting("seed", 0))
    psi = float(recipe.setting("psi", 1.0))
    n_disc = int(faces or recipe.setting("faces", 8))
    n_cal = int(recipe.setting("calibration_faces", 32))
    n_val = int(recipe.setting("validation_faces", 32))
    method = recipe.setting("jtj_method", "fd")
    try:  # "sketch" (randomized rank-`jtj_rank` JᵀJ) serves ICE; per-channel maps need real Jacobian columns
        how = JacobianMethod(method, rank=int(recipe.setting("jtj_rank", 128)),
                             chunk=int(recipe.setting("jtj_chunk", 64)))  # images per pass: memory, not results
    except (TypeError, ValueError) as err:
        raise UserError(f"recipe [bank]: jtj_method / jtj_rank / jtj_chunk: {err}") from None
    channel_method = "exact" if method == "sketch" else method
    ws = bank_latents(G, n_disc, seed, psi)
    ws_cal = bank_latents(G, n_cal, seed + 1, psi)
    ws_val = bank_latents(G, n_val, seed + 2, psi)
    tag = eyes_tag(eyes)
    eyes = memoize(eyes)
    t0 = time.time()

    found: dict[str, Subspace] = {}
    skipped: dict[str, str] = {}
    extra: dict[str, dict] = {}

    # ICE, grouped by latent space so each JᵀJ is computed once
    groups: dict[tuple, list[SubspaceRecipe]] = {}
    for sr in recipe.subspaces:
        if sr.method == "ice":
            groups.setdefault((sr.space, json.dumps(sr.layers)), []).append(sr)
    for subs in groups.values():
        for sid, (space, res, th) in _ice_group(G, subs, eyes, ws, method=how, cache_dir=cache_dir, tag=tag, progress=progress).items():
            sr = next(s for s in subs if s.id == sid)
            if res.basis.shape[0] == 0:
                skipped[sid] = f"no direction moves the criterion inside the suppressors' null space (null dim {res.null_dim})"
                continue
            found[sid] = _subspace(sr, space.space, space.layers, res.basis, "ice", res.eigenvalues.tolist(), spec_id(sr.criterion))
            extra[sid] = {"null_dim": res.null_dim, "ice_thresholds": th}

    # StyleSpace localized channels: one gradient-map pass for all of them
    ss = [sr for sr in recipe.subspaces if sr.method == "stylespace"]
    if ss:
        if eyes.parser is None:
            raise UserError("StyleSpace subspaces need a face parser (--parser)")
        regions = recipe.regions or {sr.options["region"]: [sr.options["region"]] for sr in ss}
        n_ss = int(recipe.setting("stylespace_faces", n_disc))
        conv = stylespace.conv_layers(G)
        dims = LatentSpace(G, "S", conv).dim
        loc = stylespace.localized_channels(G, ws[:n_ss], eyes.parser, regions, method=channel_method,
                                            progress=progress.stage(f"StyleSpace gradient maps ({dims} channels)", n_ss * dims))
        for sr in ss:
            region = sr.options.get("region")
            if region not in loc.assigned:
                raise UserError(f"subspace {sr.id}: region {region!r} is not in [stylespace.regions] ({', '.join(loc.regions)})")
            chans = loc.assigned[region][: sr.max_rank]
            if not chans:
                skipped[sr.id] = f"no style channel is localized in {region!r}"
                continue
            layers, basis = stylespace.channel_basis(G, chans)
            found[sr.id] = _subspace(sr, "S", layers, basis, "stylespace", criterion=spec_id(sr.criterion))
            extra[sr.id] = {"channels": [f"{l}:{c}" for l, c in chans]}

    stats = None
    for sr in recipe.subspaces:
        if sr.method == "attribute":
            stats = stats or stylespace.style_stats(G, ws_cal)
            measured = Measured(sr.criterion, eyes)
            pool = bank_latents(G, int(sr.options.get("pool", 4 * n_cal)), seed + 3, psi)
            with torch.no_grad():
                vals = torch.cat([measured(G.synthesis(pool[i : i + 16])) for i in range(0, len(pool), 16)])
            k = int(sr.options.get("positives", 10))
            pos = pool[vals.argsort(descending=True)[:k]]
            top = stylespace.attribute_channels(G, pos, stats, top=sr.max_rank)
            layers, basis = stylespace.channel_basis(G, [(l, c) for l, c, _, _ in top])
            found[sr.id] = _subspace(sr, "S", layers, basis, "attribute", criterion=spec_id(sr.criterion))
            extra[sr.id] = {"channels": [f"{l}:{c}" for l, c, _, _ in top], "scores": [s for _, _, s, _ in top]}
        elif sr.method == "correlation":
            measured = Measured(sr.criterion, eyes)
            space = LatentSpace(G, sr.space, list(sr.layers))
            eff = correlation.dimension_effects(G, measured, ws, space, shift=float(sr.options.get("shift", 2.0)),
                                                progress=progress.stage(f"{sr.id}: interventions", space.dim))
            target = float(sr.options.get("target_sd", 0.5)) * float(eff.per_face.std(0).max() or 1.0)
            cs = correlation.controlling_greedy(G, measured, ws, eff, target=target, max_size=sr.max_rank)
            if not cs.dims:
                skipped[sr.id] = "no latent dimension controls the criterion"
                continue
            v = correlation.direction_of(eff, cs.dims)
            found[sr.id] = _subspace(sr, sr.space, space.layers, v[None], "correlation", criterion=spec_id(sr.criterion))
            extra[sr.id] = {"controlling_dims": cs.dims, "joint_success": cs.success,
                            "ranking_top": correlation.controlling_by_ranking(eff, k=sr.max_rank)}
        elif sr.method == "regression":
            space = LatentSpace(G, sr.space, list(sr.layers))
            hold, n_pool = _regression_options(recipe, sr)
            held = {hid: Measured(next(o for o in recipe.subspaces if o.id == hid).criterion, eyes) for hid in hold}
            pool = bank_latents(G, n_pool, seed + 3, psi)
            found_dir = regression.regression_direction(
                G, space, Measured(sr.criterion, eyes), held, pool,
                progress=progress.stage(f"{sr.id}: regression over {len(pool)} faces", len(pool)))
            found[sr.id] = _subspace(sr, sr.space, space.layers, found_dir.direction[None], "regression",
                                     criterion=spec_id(sr.criterion))
            extra[sr.id] = {"regression": found_dir.to_json()}
        elif sr.method == "pca":
            comps, var = pca.principal_directions(G, n=int(sr.options.get("samples", 2000)), k=int(sr.options.get("component", 0)) + 1, seed=seed)
            i = int(sr.options.get("component", 0))
            found[sr.id] = _subspace(sr, sr.space if sr.space in ("W", "W+") else "W", sr.layers if sr.space == "W+" else [],
                                     comps[i : i + 1], "pca", [float(var[i])], spec_id(sr.criterion) if sr.criterion else "")
        elif sr.method == "literature":
            try:
                chans = [stylespace.paper_channel(G, code) for code in sr.options.get("channels", [])]
            except UserError as err:
                skipped[sr.id] = f"not applicable to this generator: {err.message}"
                continue
            stats = stats or stylespace.style_stats(G, ws_cal)
            sd = {(l, c): float(stats.std[_index(stats, G, l, c)]) for l, c in chans}
            signs = [float(s) for s in sr.options.get("signs", [1.0] * len(chans))]
            layers, basis = stylespace.channel_basis(G, chans, [s * sd[lc] for s, lc in zip(signs, chans)])
            sub = _subspace(sr, "S", layers, basis, "literature", criterion=spec_id(sr.criterion) if sr.criterion else "")
            norm = float(torch.tensor([sd[lc] for lc in chans]).norm())
            found[sr.id] = replace(sub, unit_norm=norm, unit="each listed style channel +1 SD across sampled faces (Wu et al. edit unit)")
            extra[sr.id] = {"channels": sr.options.get("channels"), "source": sr.options.get("source", "Wu et al. 2021")}

    # calibrate (criterion-based subspaces) and validate
    measures = {sid: Measured(next(s for s in recipe.subspaces if s.id == sid).criterion, eyes)
                for sid, sub in found.items() if sub.criterion}
    for sid, sub in list(found.items()):
        sr = next(s for s in recipe.subspaces if s.id == sid)
        if sid in measures:
            if sub.method in ("ice", "stylespace", "attribute") and sr.options.get("walk", "measure") == "measure":
                sub = orient(G, sub, measures[sid], ws_cal[:16])
            sub, cal = calibrate(G, sub, measures[sid], ws_cal)
            extra.setdefault(sid, {})["calibration"] = {**cal.figures(), "flipped": cal.flipped}
            found[sid] = replace(sub, validation={**sub.validation, "calibration": extra[sid]["calibration"]})
            if not cal.unit_norm < float("inf"):
                skipped[sid] = "the direction does not change its criterion (slope 0)"
                found.pop(sid)
        elif sub.method == "pca":
            found[sid] = replace(sub, unit_norm=latent_sd(G, sub, ws_cal), unit="1 SD of w along this principal direction")

    if manifold.fit_faces and found:  # before validation, which walks only where the walks stay faces
        found = {s.id: s for s in with_valid_ranges(G, list(found.values()), manifold, measures=measures,
                                                     progress=progress.stage("valid ranges", len(found)))}
    reports, rejected = {}, {}
    scales = calibrated_scales(found.values())
    tick = progress.stage("validation", len(found))
    for sid, sub in found.items():
        sr = next(s for s in recipe.subspaces if s.id == sid)
        if sid in measures:
            rep = validate_subspace(G, sub, sid, measures, ws_val, thresholds=_thresholds(recipe, sr),
                                    identity=identity, truth=truth, truth_factor=sr.truth_factor,
                                    ignore=leakage_exempt(sid, measures, untargeted), scales=scales)
            if sr.options.get("validation"):
                rep["threshold_overrides"] = {"values": dict(sr.options["validation"]),
                                              "reason": str(sr.options.get("validation_reason", ""))}
        else:
            rep = {"passed": True, "reasons": [], "note": "no criterion: not validated"}
        rep.update(extra.get(sid, {}))
        if "manifold" in sub.validation:
            rep["manifold"] = sub.validation["manifold"]
        reports[sid] = rep
        # literature channels stay unverified until validated on this generator
        verified = (sid in measures and rep["passed"]) if sub.method == "literature" else sub.verified
        found[sid] = replace(sub, validation=rep, verified=verified)
        if not rep["passed"]:
            rejected[sid] = rep["reasons"]
        tick(1)

    shipped = [found[sr.id] for sr in recipe.subspaces if sr.id in found and (keep_failing or sr.id not in rejected)]
    meta = {
        "recipe": recipe.name,
        "recipe_file": Path(recipe.path).name,
        "seed": seed,
        "faces": {"discovery": n_disc, "calibration": n_cal, "validation": n_val},
        "jtj_method": method,
        **({"jtj_rank": how.rank} if method == "sketch" else {}),
        "eyes": tag,
        "eyes_spec": recipe.eyes,
        "rejected": rejected,
        "skipped": skipped,
        "manifold": manifold.to_json() if manifold.fit_faces else None,
        "build_seconds": round(time.time() - t0, 1),
    }
    bank = Bank(name=recipe.name, generator_fingerprint=G.fingerprint(), subspaces=shipped, meta=meta)
    if out is not None:
        save_bank(bank, out)
        write_text(Path(out) / "validation.json", json.dumps(reports, indent=2, default=float) + "\n")
    return BuildResult(bank, reports, rejected, skipped)


def _index(stats, G, layer: str, channel: int) -> int:
    sizes = {l.name: l.channels for l in G.style_layers}
    offset = 0
    for name in stats.layers:
        if name == layer:
            return offset + channel
        offset += sizes[name]
    raise KeyError(layer)


def validate_bank(G: Generator, bank: Bank, eyes: Eyes, *, faces: int = 32, seed: int = 2,
                  truth: Callable | None = None, progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """Re-validate every subspace of ``bank`` that has a criterion, on new faces, with the rules
    `build_bank` applies (each subspace's stored thresholds; the same leakage exemptions).
    The bank's entries get the new figures (save it to keep them).

    Args:
        G: the generator the bank was built for.
        bank: the bank; its subspaces are updated in place.
        eyes: the landmark detector and parser its criteria need.
        faces, seed: the validation faces.
        truth: optional ground-truth reader (FaceLab only) for the true-factor check.
        progress: optional ``progress(1)`` per subspace.

    Returns:
        Subspace id -> its validation report (``passed``, ``reasons`` and the figures).
    """
    eyes = memoize(eyes)
    measures = {s.id: Measured(json.loads(s.criterion), eyes) for s in bank.subspaces if s.criterion}
    ws = bank_latents(G, faces, seed)
    scales = calibrated_scales(bank.subspaces)
    reports = {}
    for i, s in enumerate(bank.subspaces):
        if s.id in measures:
            stored = s.validation or {}
            rep = validate_subspace(G, s, s.id, measures, ws, thresholds=Thresholds(**stored.get("thresholds", {})),
                                    truth=truth, truth_factor=stored.get("truth_factor"),
                                    ignore=leakage_exempt(s.id, measures, list(stored.get("leakage_unchecked", {}))),
                                    scales=scales)
            reports[s.id] = rep
            bank.subspaces[i] = replace(s, validation={**stored, **rep})
        if progress is not None:
            progress(1)
    return reports
