"""The audit report: built from an audit directory alone, never from a model.

    from iceaudit.report import build_report
    build_report("runs/audit-1", formats=["html", "pdf"], policy="examples/policies/fairness.toml")

`model` reads the directory into a `ReportModel`, `charts` draws the figures,
`render` fills report_templates/ and prints the PDF with weasyprint.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)


def build_report(audit_dir: str | Path, formats: Iterable[str] = ("html", "pdf"), policy: str | Path | None = None,
                 out_dir: str | Path | None = None) -> list[Path]:
    """Write report.html and/or report.pdf; return the paths written (HTML first)."""
    from iceaudit.atomic import ensure_dir, write_text
    from iceaudit.report.model import load_report_model
    from iceaudit.report.render import render_html, render_pdf

    formats = list(formats)
    model = load_report_model(audit_dir, policy=policy)
    out = ensure_dir(Path(out_dir) if out_dir is not None else Path(audit_dir), "report directory")  # before rendering
    html = render_html(model)
    written = []
    if "html" in formats:
        written.append(write_text(out / "report.html", html))
    if "pdf" in formats:
        path = out / "report.pdf"
        for warning in render_pdf(html, path):
            log.warning("weasyprint: %s", warning)
        written.append(path)
    return written


__all__ = ["build_report"]
