"""An audit inside Jupyter: the verdict, the ranking chart and the top drivers' walk strips.

One small self-contained HTML fragment (images as data URIs) for `Audit._repr_html_`;
the full report stays `Audit.report()`.
"""
from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from iceaudit.api import Audit

TOP_STRIPS = 3


def _img(data: bytes, alt: str, width: str = "100%") -> str:
    return (f'<img alt="{escape(alt)}" style="max-width:{width}" '
            f'src="data:image/png;base64,{base64.b64encode(data).decode()}">')


def audit_html(audit: "Audit") -> str:
    """The notebook view of an audit.

    Args:
        audit: an Audit read from its directory.
    """
    from iceaudit.report import charts
    from iceaudit.report.model import load_report_model

    model = load_report_model(audit.dir)
    record = audit.record
    title = record.classifier.name if record.classifier else audit.dir.name
    parts = [f"<div class='iceaudit-audit'><p><b>iceaudit</b> — {escape(title)}: "
             f"{escape(audit.verdict)}</p>", _img(charts.ranking(model), "driver ranking", "640px")]
    shown = [d for d in record.drivers if record.walk_strips.get(d.subspace)][:TOP_STRIPS]
    for d in shown:
        entry = record.walk_strips[d.subspace][0]
        if not entry.image or not entry.alphas:
            continue
        scores = ", ".join("–" if s is None else f"{s:+.2f}" for s in entry.scores or [])
        parts.append(f"<p>{escape(d.name)}: steps {entry.alphas[0]:+.2g} … "
                     f"{entry.alphas[-1]:+.2g}, scores {escape(scores)}</p>")
        parts.append(_img((audit.dir / entry.image).read_bytes(), f"walk along {d.subspace}"))
    parts.append(f"<p>audit directory: <code>{escape(str(audit.dir))}</code></p></div>")
    return "\n".join(parts)
