"""The report's charts (matplotlib, Agg backend), each returned as PNG bytes."""
from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from iceaudit.report.model import Curve, ReportModel  # noqa: E402

DPI = 150
BLUE, RED, GREY, INK = "#1f5fa8", "#c0392b", "#9aa3ad", "#222831"
plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 8.5, "axes.spines.top": False,
                     "axes.spines.right": False, "axes.titlesize": 9.5, "axes.titleweight": "bold"})


def _png(fig: Any) -> bytes:
    # Fixed margins (see _margins) instead of bbox_inches="tight", which draws every chart twice.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _margins(fig: Any, left: float, bottom: float, right: float = 0.15, top: float = 0.12) -> None:
    """Margins in inches around the axes (room for tick labels and axis titles)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, bottom=bottom / h, right=1 - right / w, top=1 - top / h)


def _colour(d: dict[str, Any]) -> str:
    if not d.significant:
        return GREY
    return RED if d.protected else BLUE


def ranking(model: ReportModel) -> bytes:
    """Slope per unit with its 95% CI, one row per subspace, and each row's null floor."""
    drivers = model.drivers
    n = len(drivers)
    fig, ax = plt.subplots(figsize=(7.2, 0.32 * n + 1.1))
    for y, d in enumerate(drivers):
        floor = d.null_abs_slope or 0.0
        ax.add_patch(Rectangle((-floor, y - 0.38), 2 * floor, 0.76, color="#e6e8eb", lw=0, zorder=0))
        c = _colour(d)
        ax.plot([d.ci_low, d.ci_high], [y, y], color=c, lw=2.2, solid_capstyle="butt", zorder=2)
        ax.plot(d.slope, y, "o", color=c, ms=5.5, zorder=3)
    ax.axvline(0, color=INK, lw=0.8)
    ax.set_yticks(range(n), [d.name + ("  (protected)" if d.protected else "") for d in drivers])
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("change of the classifier's score per semantic unit (slope, 95% CI)")
    ax.legend(handles=[Line2D([], [], color=BLUE, marker="o", lw=2, label="significant driver"),
                       Line2D([], [], color=RED, marker="o", lw=2, label="significant, protected attribute"),
                       Line2D([], [], color=GREY, marker="o", lw=2, label="not significant"),
                       Patch(color="#e6e8eb", label="null floor (random directions)")],
              loc="lower right", frameon=False, fontsize=7.5)
    ax.grid(axis="x", color="#eeeeee", lw=0.6)
    longest = max((len(d.name) + (13 if d.protected else 0) for d in drivers), default=10)
    _margins(fig, left=0.25 + 0.068 * longest, bottom=0.5)
    return _png(fig)


def _draw_curve(ax: Any, c: Curve, threshold: float | None, colour: str, faces: bool = True) -> None:
    if c.null_mean is not None:
        ax.fill_between(c.null_alphas, c.null_low, c.null_high, color="#dfe3e8", lw=0, label="random directions (null)")
        ax.plot(c.null_alphas, c.null_mean, color=GREY, lw=1, ls="--")
    ax.fill_between(c.alphas, c.low, c.high, color=colour, alpha=0.18, lw=0, label="10-90% of faces")
    if faces:
        for f in c.faces:
            ax.plot(c.alphas, f, color=colour, alpha=0.25, lw=0.6)
    ax.plot(c.alphas, c.mean, color=colour, lw=2, label="mean over faces")
    if threshold is not None:
        ax.axhline(threshold, color=INK, lw=0.8, ls=":", label="decision threshold")
    ax.axvline(0, color="#cccccc", lw=0.6)


def curve(model: ReportModel, sid: str) -> bytes:
    d = model.driver(sid)
    fig, ax = plt.subplots(figsize=(4.6, 2.9))
    _draw_curve(ax, model.curves[sid], model.threshold, _colour(d) if d.significant else INK)
    ax.set_xlabel(f"step along {d.name} (semantic units)")
    ax.set_ylabel("classifier score")
    ax.legend(frameon=False, fontsize=7, loc="best")
    _margins(fig, left=0.6, bottom=0.48)
    return _png(fig)


def leakage(model: ReportModel) -> bytes | None:
    """Heatmap: how far each walk moves the other subspaces' criteria (per unit)."""
    import numpy as np

    leak = (model.record.validity.leakage if model.record.validity else None) or {}
    if not leak:
        return None
    names = {d.subspace: d.name for d in model.drivers}
    rows = [s for s in (d.subspace for d in model.drivers) if s in leak]
    cols = rows + sorted({c for r in rows for c in leak[r]} - set(rows))
    m = np.array([[leak[r].get(c, np.nan) if c != r else np.nan for c in cols] for r in rows], dtype=float)
    if not np.isfinite(m).any():
        return None  # one walk, or no criterion measured beside its own: nothing to show
    longest = max((len(names.get(c, c)) for c in cols), default=10)
    left, bottom, right = 0.3 + 0.065 * longest, 0.35 + 0.05 * longest, 0.95
    # the figure grows with its labels, so the cells keep their size however long the names are
    fig, ax = plt.subplots(figsize=(left + right + 0.36 * len(cols) + 0.3, bottom + 0.12 + 0.3 * len(rows) + 0.3))
    im = ax.imshow(np.abs(m), cmap="Oranges", vmin=0, vmax=max(0.5, float(np.nanmax(np.abs(m)))))
    ax.set_xticks(range(len(cols)), [names.get(c, c) for c in cols], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [names.get(r, r) for r in rows], fontsize=7)
    ax.set_xlabel("criterion that moved")
    ax.set_ylabel("subspace walked")
    for s in ax.spines.values():
        s.set_visible(False)
    fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02, label="|change| per unit")
    _margins(fig, left=left, bottom=bottom, right=right)
    return _png(fig)


def regions(model: ReportModel) -> bytes | None:
    """Per face region: each method's share of attribution beside the region's share of the image."""
    import numpy as np

    view = model.baselines
    if view is None or not view.regions or not any(p.entry.regions for p in view.pixel):
        return None
    methods = [p for p in view.pixel if p.entry.regions]
    parts = view.regions
    k = len(methods) + 1
    h = 0.8 / k
    y = np.arange(len(parts))
    fig, ax = plt.subplots(figsize=(7.2, 0.075 * k * len(parts) + 1.0))
    ax.barh(y - 0.4 + h / 2, [view.area[x] for x in parts], h, color="#cfd4da", label="share of the image (area)")
    palette = ["#1f5fa8", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d35400"]
    for i, p in enumerate(methods):
        regs = p.entry.regions
        ax.barh(y - 0.4 + h * (i + 1.5), [regs[x][p.share_key] if x in regs else 0.0 for x in parts], h,
                color=palette[i % len(palette)], label=p.name)
    ax.set_yticks(y, parts)
    ax.set_ylim(len(parts) - 0.5, -0.5)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("share of the attribution (coloured) and of the image area (grey)")
    ax.grid(axis="x", color="#eeeeee", lw=0.6)
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    longest = max(len(x) for x in parts)
    _margins(fig, left=0.3 + 0.07 * longest, bottom=0.5)
    return _png(fig)
