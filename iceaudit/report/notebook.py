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
    parts = [f"<div class='iceaudit-audit'><p><b>iceaudit</b> — {escape(audit.summary['classifier']['name'])}: "
             f"{escape(audit.verdict)}</p>", _img(charts.ranking(model), "driver ranking", "640px")]
    strips = audit.summary.get("walk_strips") or {}
    names = {d["subspace"]: d["name"] for d in audit.summary["drivers"]}
    for sid in [d["subspace"] for d in audit.summary["drivers"] if d["subspace"] in strips][:TOP_STRIPS]:
        entry = strips[sid][0]
        scores = ", ".join(f"{s:+.2f}" for s in entry["scores"])
        parts.append(f"<p>{escape(names.get(sid, sid))}: steps {entry['alphas'][0]:+.2g} … "
                     f"{entry['alphas'][-1]:+.2g}, scores {escape(scores)}</p>")
        parts.append(_img((audit.dir / entry["image"]).read_bytes(), f"walk along {sid}"))
    parts.append(f"<p>audit directory: <code>{escape(str(audit.dir))}</code></p></div>")
    return "\n".join(parts)
