"""The report model: everything the report shows, read from an audit directory.

Never loads a model: it reads summary.json, results.parquet and images/
(read as `iceaudit.record.AuditRecord`). Whatever is absent becomes a
sentence in `ReportModel.missing` (and in its section) instead of an error;
only a missing or invalid summary.json is bad input.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iceaudit.errors import UserError
from iceaudit.record import AttFindChannel, AuditRecord, Baselines, Driver, PixelBaseline, compose_verdict, load_record

log = logging.getLogger(__name__)

MAX_DETAILED = 8  # per-driver pages: significant and protected drivers, at least the top 3


@dataclass
class Curve:
    """Score vs step for one subspace: mean and 10-90% band over faces, and its null walks."""

    alphas: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    faces: list[list[float]]  # a few individual faces, for texture
    null_alphas: list[float] | None = None  # null walks may use fewer steps (e.g. only the range's ends)
    null_mean: list[float] | None = None
    null_low: list[float] | None = None
    null_high: list[float] | None = None


@dataclass
class Strip:
    """One face walked along one subspace: a JPEG of the frames and each frame's score."""

    sample: int
    jpeg: bytes
    alphas: list[float]
    scores: list[float | None]


@dataclass
class Counterfactual:
    sample: int
    subspace: str
    name: str
    step: float
    score_before: float | None
    score_after: float | None
    original: bytes | None
    counterfactual: bytes | None
    diff: bytes | None


# Human names of the baselines' method ids (iceaudit.audit.baselines)
METHOD_NAMES = {
    "saliency": "Saliency (gradient)",
    "input_x_gradient": "Input × gradient",
    "ig_blur": "Integrated Gradients (from a blurred face)",
    "ig_mean": "Integrated Gradients (from the mean face)",
    "smoothgrad": "SmoothGrad (averaged noisy gradients)",
    "occlusion": "Occlusion (covering patches)",
    "feature_ablation": "Face-part ablation",
    "gradcam": "Grad-CAM",
    "latent": "Latent attribution",
    "attfind": "AttFind (unnamed drivers)",
    "tcav": "TCAV (concept activation vectors)",
}


SHORT_NAMES = {"input_x_gradient": "Input × gradient", "ig_blur": "IG (blurred face)", "ig_mean": "IG (mean face)",
               "smoothgrad": "SmoothGrad", "occlusion": "Occlusion", "feature_ablation": "Part ablation",
               "saliency": "Saliency", "gradcam": "Grad-CAM"}


def method_name(method: str | None) -> str:
    return METHOD_NAMES.get(method or "", method or "?")


@dataclass
class PixelMethod:
    """One pixel baseline that ran: its summary entry, its share of attribution per region and its map."""

    id: str
    name: str
    short: str  # for narrow table headers
    entry: PixelBaseline  # record.baselines.pixel[id]
    share_key: str  # "mass_share" (attribution maps) or "share" (face-part ablation: share of score drop)
    map: bytes | None


@dataclass
class UnnamedDriver:
    index: int  # position in record.baselines.attfind.unnamed_drivers
    entry: AttFindChannel
    strip: bytes | None
    target: str | None  # the AttFind class ("positive" / "negative") whose top channels hold it


@dataclass
class BaselinesView:
    """record.baselines (written by iceaudit.audit.baselines.run_baselines) as the report shows it."""

    pixel: list[PixelMethod]
    skipped: list[tuple[str, str]]  # (method name, reason)
    regions: list[str]  # face parts with any area, in the parser's label order
    area: dict[str, float]  # part -> share of the image area
    area_from: dict[str, str]  # part -> the method whose entry the area share is read from (all agree)
    unnamed: list[UnnamedDriver]


@dataclass(kw_only=True)
class ReportDriver(Driver):
    """A driver as the report shows it: with its bank entry's unit and description, and whether
    it is protected (tagged, or named by the fairness section)."""

    unit: str = ""
    description: str = ""
    protected: bool = False
    walked: list[float] | None = None  # the steps walked, where the bank's range was clipped to them
    bank_range: list[float] | None = None  # ... and the bank's range


@dataclass
class ReportModel:
    audit_dir: Path
    record: AuditRecord
    verdict: str
    synthetic: bool
    threshold: float | None
    drivers: list[ReportDriver]  # ranked
    detailed: list[str]  # subspace ids that get their own page
    protected: list[str]
    curves: dict[str, Curve] = field(default_factory=dict)
    strips: dict[str, list[Strip]] = field(default_factory=dict)
    counterfactuals: list[Counterfactual] = field(default_factory=list)
    baselines: BaselinesView | None = None  # None: the audit ran no baselines
    gate: Any = None  # iceaudit.gate.GateResult when a policy was given
    missing: list[str] = field(default_factory=list)

    def driver(self, sid: str) -> ReportDriver:
        return next(d for d in self.drivers if d.subspace == sid)


MAX_IMAGE_PIXELS = 50_000_000  # an audit's widest strip at 1024 px is ~5 × 1024 × 4 × 1024 ≈ 21 M


def to_jpeg(path: Path, quality: int = 90, min_height: int = 0) -> bytes:
    """Re-encode an image as JPEG (weasyprint draws JPEG much faster than PNG)."""
    from PIL import Image

    with Image.open(path) as im:  # lazy: only the header is read here
        if im.width * im.height > MAX_IMAGE_PIXELS:
            raise OSError(f"{im.width} × {im.height} pixels is larger than any audit image "
                          f"(limit {MAX_IMAGE_PIXELS:,}); not decoded")
        im = im.convert("RGB")
        if min_height and im.height < min_height:  # small faces: upsample once, crisp in print
            scale = -(-min_height // im.height)
            im = im.resize((im.width * scale, im.height * scale), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()


def _image(audit_dir: Path, rel: str | None, missing: list[str], what: str, min_height: int = 0) -> bytes | None:
    from PIL import Image

    if not rel:
        return None
    path = (audit_dir / rel).resolve()
    if audit_dir.resolve() not in path.parents:  # summary paths stay inside the audit directory
        missing.append(f"{what}: image path {rel!r} points outside the audit directory; not shown")
        return None
    if not path.is_file():
        missing.append(f"{what}: image {rel} is missing")
        return None
    try:
        return to_jpeg(path, min_height=min_height)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        missing.append(f"{what}: image {rel} cannot be read ({err})")
        return None


def _curves(results: Any, ids: list[str]) -> dict[str, Curve]:
    import numpy as np

    out: dict[str, Curve] = {}
    is_null = results["subspace"].str.startswith("null:")
    real = results[~is_null]
    null = results[is_null].copy()
    if len(null):
        null["of"] = null["subspace"].str.split(":").str[1]
    for sid, g in real.groupby("subspace", sort=False):
        if sid not in ids:
            continue
        table = g.pivot_table(index="sample", columns="alpha", values="score")
        alphas = [float(a) for a in table.columns]
        v = table.to_numpy()
        curve = Curve(alphas=alphas, mean=np.nanmean(v, 0).tolist(), low=np.nanquantile(v, 0.1, 0).tolist(),
                      high=np.nanquantile(v, 0.9, 0).tolist(), faces=v[: min(8, len(v))].tolist())
        if len(null):
            ng = null[null["of"] == sid]
            if len(ng):
                # One curve per null direction (mean over faces), then the band across directions.
                per_dir = ng.groupby(["subspace", "alpha"])["score"].mean().unstack("alpha")
                nv = per_dir.to_numpy()
                curve.null_alphas = [float(a) for a in per_dir.columns]
                curve.null_mean = np.nanmean(nv, 0).tolist()
                curve.null_low = np.nanmin(nv, 0).tolist()
                curve.null_high = np.nanmax(nv, 0).tolist()
        out[str(sid)] = curve
    return out


def _baselines(audit_dir: Path, base: Baselines | None, missing: list[str]) -> BaselinesView | None:
    """Images and names for the baselines section; the numbers stay in the record."""
    if base is None or not base.methods:
        return None
    pixel, skipped = [], []
    for mid, entry in base.pixel.items():
        if entry.status != "ok":
            skipped.append((method_name(mid), entry.reason or "no reason given"))
            continue
        share_key = "share" if mid == "feature_ablation" else "mass_share"
        jpeg = _image(audit_dir, entry.map, missing, f"{method_name(mid)} attribution map", 240)
        pixel.append(PixelMethod(mid, method_name(mid), SHORT_NAMES.get(mid, mid), entry, share_key, jpeg))
    for mid, other in (("latent", base.latent), ("attfind", base.attfind), ("tcav", base.tcav)):
        if other is not None and other.status == "skipped":
            skipped.append((method_name(mid), other.reason or "no reason given"))
    labels = base.labels or []
    area: dict[str, float] = {}
    area_from: dict[str, str] = {}
    for p in pixel:
        for part, r in (p.entry.regions or {}).items():
            if part not in area:
                area[part], area_from[part] = r["area_share"], p.id
    regions = [x for x in labels if x in area] + [x for x in area if x not in labels]
    unnamed = []
    att = base.attfind
    for i, u in enumerate((att.unnamed_drivers if att else None) or []):
        strip = _image(audit_dir, u.walk_strip, missing, f"unnamed driver {u.channel}", 192)
        target = next((cls for cls, c in (att.classes or {}).items()
                       if any(t.channel == u.channel for t in c.top)), None)
        unnamed.append(UnnamedDriver(i, u, strip, target))
    return BaselinesView(pixel=pixel, skipped=skipped, regions=regions, area=area, area_from=area_from, unnamed=unnamed)




def load_report_model(audit_dir: str | Path, policy: str | Path | None = None) -> ReportModel:
    """Read an audit directory (and optionally hold it to a policy) into a `ReportModel`."""
    audit_dir = Path(audit_dir)
    if not audit_dir.is_dir():
        raise UserError(f"no audit directory at {audit_dir}")
    record = load_record(audit_dir)
    missing: list[str] = []

    bank = {s.id: s for s in (record.bank.subspaces if record.bank else [])}
    protected = record.protected
    drivers = [ReportDriver(**vars(d), unit=(bank[d.subspace].unit or "") if d.subspace in bank else "",
                            description=(bank[d.subspace].description or "") if d.subspace in bank else "",
                            protected=d.subspace in protected,
                            walked=bank[d.subspace].step_range if d.subspace in bank else None,
                            bank_range=bank[d.subspace].bank_step_range if d.subspace in bank else None)
               for d in record.drivers]
    verdict = record.verdict.strip() or compose_verdict(
        drivers, set(protected), units={d.subspace: d.unit for d in drivers if d.unit})

    detailed = [d.subspace for i, d in enumerate(drivers) if d.significant or d.protected or i < 3]
    detailed = detailed[:MAX_DETAILED] + [s for s in protected if s not in detailed[:MAX_DETAILED]]
    threshold = record.classifier.threshold if record.classifier else None

    model = ReportModel(audit_dir=audit_dir, record=record, verdict=verdict,
                        synthetic=bool(record.provenance.synthetic_fixture), threshold=threshold, drivers=drivers,
                        detailed=detailed, protected=protected, missing=missing)

    lookup: dict[tuple[int, str, float], float] = {}
    parquet = audit_dir / "results.parquet"
    if parquet.is_file():
        import pandas as pd

        try:
            results = pd.read_parquet(parquet, columns=["sample", "subspace", "alpha", "score"])
        except Exception as err:  # pyarrow raises many types for a damaged file
            raise UserError(f"{parquet}: cannot read the results table ({err})") from None
        model.curves = _curves(results, [d.subspace for d in drivers])
        wanted = results[results["subspace"].isin(detailed)]
        lookup = {(int(s), str(sub), round(float(a), 6)): float(v)
                  for s, sub, a, v in wanted.itertuples(index=False, name=None)}
    else:
        missing.append("results.parquet is missing: score-vs-step curves and per-frame scores cannot be shown")

    for sid in detailed:
        entries = record.walk_strips.get(sid) or []
        if not entries:
            missing.append(f"{model.driver(sid).name}: the audit saved no walk strips (images/walks/{sid}/)")
        for e in entries:
            jpeg = _image(audit_dir, e.image, missing, f"walk strip {sid}", min_height=128)
            if jpeg is None or e.sample is None:
                continue
            given = e.scores or []
            scores = [lookup.get((e.sample, sid, round(a, 6)), given[k] if k < len(given) else None)
                      for k, a in enumerate(e.alphas)]
            model.strips.setdefault(sid, []).append(Strip(sample=e.sample, jpeg=jpeg, alphas=e.alphas, scores=scores))

    names = {d.subspace: d.name for d in drivers}
    for e in record.counterfactuals.best if record.counterfactuals else []:
        what = f"counterfactual for face {e.sample}"
        model.counterfactuals.append(Counterfactual(
            sample=e.sample, subspace=e.subspace, name=names.get(e.subspace, e.subspace), step=e.step,
            score_before=e.score_before, score_after=e.score_after,
            original=_image(audit_dir, e.original, missing, what, 128),
            counterfactual=_image(audit_dir, e.counterfactual, missing, what, 128),
            diff=_image(audit_dir, e.diff, missing, what, 128)))

    model.baselines = _baselines(audit_dir, record.baselines, missing)

    if policy is not None:
        from iceaudit.gate import evaluate, load_policy

        model.gate = evaluate(load_policy(policy), record, None, audit_label=str(audit_dir))
    return model
