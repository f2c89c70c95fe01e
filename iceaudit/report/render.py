"""Render a `ReportModel` into one self-contained HTML file and a PDF.

Templates and CSS live in report_templates/ (report.html.j2, report.css): at
the top of a source tree, and installed as the data package
``iceaudit/report_templates/`` (setup.py); `templates_dir` finds either.
Every image is embedded as a data URI; the PDF is drawn by weasyprint from
the same HTML with a fetcher that admits data URIs only, so a report never
reads files or the network while rendering.
"""
from __future__ import annotations

import base64
import logging
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from iceaudit import __version__
from iceaudit.report.model import ReportModel, method_name
from iceaudit.record import agreement_word

TEMPLATE_FILES = ("report.html.j2", "report.css")


def templates_dir(module_file: str | Path = __file__) -> Path:
    """Where the report templates are: $ICEAUDIT_TEMPLATES if set, else the source
    tree's report_templates/ (next to the package: a checkout or an editable
    install), else the installed package's iceaudit/report_templates/."""
    from iceaudit.errors import UserError

    env = os.environ.get("ICEAUDIT_TEMPLATES")
    here = Path(module_file).resolve().parent  # .../iceaudit/report
    candidates = [Path(env)] if env else [here.parents[1] / "report_templates", here.parent / "report_templates"]
    for folder in candidates:
        if all((folder / name).is_file() for name in TEMPLATE_FILES):
            return folder
    raise UserError(f"report templates ({', '.join(TEMPLATE_FILES)}) not found in {' or '.join(map(str, candidates))}",
                    hint="Reinstall iceaudit (pip install .), or point ICEAUDIT_TEMPLATES at a report_templates folder.")

GLOSSARY = [
    ("Classifier score", "The number the audited model outputs for a face (here: how strongly it says "
     "“{positive}”). Above the decision threshold the face counts as “{positive}”."),
    ("Generator", "A neural network (StyleGAN2) that draws realistic faces from random numbers. It lets us make "
     "controlled edits of a face that no photo collection offers."),
    ("Subspace / walk", "A named direction of change in the generator (smile, skin tone, glasses…). A walk edits "
     "one face step by step along it, keeping everything else as fixed as the generator allows."),
    ("Semantic unit", "The size of one step, calibrated so that one unit changes the named attribute by a fixed "
     "amount (for example one standard deviation of skin luminance across faces)."),
    ("Slope", "How much the score changes, on average over faces, per semantic unit. The sign says in which "
     "direction; a larger absolute value means a stronger driver."),
    ("95% confidence interval (CI)", "The range that the slope lies in with 95% confidence, from re-sampling the "
     "faces (bootstrap). If it is narrow, the estimate is precise."),
    ("Null floor", "How much the score moves along random directions of the same kind and size. A subspace only "
     "counts as a driver if it moves the score clearly more than that."),
    ("Significant", "The effect exceeds the null floor after correcting for testing many subspaces at once "
     "(Holm correction, 5% level)."),
    ("Flip rate", "The share of faces whose decision changes (for example from “not {positive}” to “{positive}”) "
     "somewhere within the tested range of steps."),
    ("Counterfactual", "The same face with the smallest edit that changes the classifier's decision: an "
     "answer to “what would have had to be different?”."),
    ("Protected attribute", "A characteristic such as skin tone or age that a decision should not depend on, by "
     "law or by policy. Subspaces tagged protected are reported in the fairness section."),
    ("Leakage", "How much a walk also changes attributes it is not meant to change. High leakage means an "
     "effect may belong partly to another attribute."),
    ("Attribution map (Captum)", "A per-pixel estimate of which parts of one image the classifier relied on. "
     "It shows where, not what: a colour shortcut spreads over the whole skin."),
    ("Latent attribution", "The same kind of estimate made in the generator's internal code instead of on pixels, "
     "then read along each named attribute: a second opinion on the walks from gradients."),
    ("Rank correlation", "Spearman's rho: +1 when two methods order the attributes identically, 0 when their orders "
     "are unrelated, −1 when reversed."),
    ("Unnamed driver", "One of the generator's style channels (its elementary knobs) that moves the decision but "
     "that no named attribute explains; found by AttFind. Worth naming and testing in a later audit."),
    ("Infidelity, sensitivity", "Captum's checks of an attribution map: how well it predicts the effect of small "
     "changes of the face, and how much it changes itself under imperceptible changes. Lower is better."),
]


def datauri(data: bytes | None, mime: str = "image/jpeg") -> str:
    return "" if data is None else f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def num(value: Any, signed: bool = False) -> str:
    """Three significant figures; the same rule everywhere in the report."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = f"{float(value):+.3g}" if signed else f"{float(value):.3g}"
    return text.replace("-", "−")


def pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.0f}%"


def percentile(quantile: Any) -> str:
    """0.975 -> '97.5th', 0.95 -> '95th', 0.99 -> '99th' (no rounding of the stated level)."""
    v = round(100 * float(quantile), 3)
    text = f"{v:g}"
    last = int(v) % 100 if v == int(v) else None
    suffix = "th" if last is None or 10 <= last <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(last % 10, "th")
    return text + suffix


def pval(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _env(folder: Path) -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=jinja2.select_autoescape(["j2", "html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(datauri=datauri, num=num, pct=pct, pval=pval, percentile=percentile)
    return env


def render_html(model: ReportModel) -> str:
    """The report as one self-contained HTML string (charts drawn here)."""
    from iceaudit.report import charts

    figures: dict[str, Any] = {"ranking": charts.ranking(model), "leakage": charts.leakage(model), "regions": charts.regions(model)}
    figures["curves"] = {sid: charts.curve(model, sid) for sid in model.detailed if sid in model.curves}
    from iceaudit.record import BankRecord, ClassifierRecord, Counterfactuals, GeneratorRecord, SettingsRecord, Validity
    from iceaudit.record.codec import to_json

    r = model.record
    sections = {"clf": r.classifier or ClassifierRecord(name=""), "gen": r.generator or GeneratorRecord(),
                "bank": r.bank or BankRecord(), "settings": r.settings or SettingsRecord(),
                "val": r.validity or Validity(), "cf": r.counterfactuals or Counterfactuals(), "prov": r.provenance}
    positive = sections["clf"].positive_class or "positive"
    folder = templates_dir()
    css = (folder / "report.css").read_text()
    return _env(folder).get_template("report.html.j2").render(
        m=model, s=r, **sections, settings_items=list(to_json(sections["settings"]).items()),
        fig=figures, css=css, positive=positive,
        glossary=[(t, d.format(positive=positive)) for t, d in GLOSSARY],
        word=agreement_word, method_name=method_name, names={d.subspace: d.name for d in model.drivers},
        built=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), version=__version__,
    )


def _data_only_fetcher() -> Any:
    """A weasyprint URL fetcher that serves data: URIs and refuses everything else."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"data"})


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def render_pdf(html: str, path: str | Path) -> list[str]:
    """Write the PDF; return weasyprint's warnings (a missing image only logs one)."""
    import weasyprint

    handler = _Collect()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(handler)
    try:
        doc = weasyprint.HTML(string=html, url_fetcher=_data_only_fetcher(), media_type="print")
        from iceaudit.atomic import atomic_path

        with atomic_path(path) as tmp:
            doc.write_pdf(tmp)
    finally:
        logger.removeHandler(handler)
    return handler.messages
