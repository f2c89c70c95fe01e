"""How long the report takes to build (HTML + PDF) for a typical audit directory.

Typical = 14 subspaces, 24 faces in results.parquet with 9 steps and 4 null
directions each, walk strips for 6 subspaces x 4 faces and 8 counterfactuals
(40 face images, 8 difference maps, 3 attribution maps). The audit directory
is the synthetic fixture (iceaudit.report.sample): the report does not care
where the numbers came from.

    PYTHONPATH=. python benchmarks/bench_report.py [--repeat 3]

Prints one line per stage (median of the repeats) and the end-to-end time of
`python -m iceaudit report AUDIT --format html,pdf` in a fresh process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from iceaudit.report import charts
    from iceaudit.report.model import load_report_model
    from iceaudit.report.render import render_html, render_pdf
    from iceaudit.report.sample import write_sample_audit

    with tempfile.TemporaryDirectory() as tmp:
        audit = write_sample_audit(Path(tmp) / "audit", n_faces=24, strip_subspaces=5)
        faces = sum(1 for p in (audit / "images").rglob("*.png") if "baselines" not in p.parts and "diff" not in p.name)
        strips = sum(1 for _ in (audit / "images" / "walks").rglob("*.png"))
        times: dict[str, list[float]] = {"model (read summary, parquet, images)": [], "charts": [],
                                         "html (charts + template)": [], "pdf (weasyprint)": [], "total in-process": []}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            model = load_report_model(audit)
            t1 = time.perf_counter()
            charts.ranking(model)
            for sid in model.detailed:
                charts.curve(model, sid)
            charts.leakage(model)
            charts.regions(model)
            t2 = time.perf_counter()
            html = render_html(model)
            t3 = time.perf_counter()
            warnings = render_pdf(html, Path(tmp) / "report.pdf")
            t4 = time.perf_counter()
            assert not warnings, warnings
            times["model (read summary, parquet, images)"].append(t1 - t0)
            times["charts"].append(t2 - t1)
            times["html (charts + template)"].append(t3 - t2)
            times["pdf (weasyprint)"].append(t4 - t3)
            times["total in-process"].append((t1 - t0) + (t4 - t2))
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "iceaudit", "report", str(audit), "--format", "html,pdf"],
                       check=True, env=env, capture_output=True)
        cli = time.perf_counter() - t0
        pages = (audit / "report.pdf").stat().st_size
        html_size = (audit / "report.html").stat().st_size

    print(f"audit: 14 subspaces, {faces} face images ({strips} walk strips), load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores, {args.repeat} repeats (median)")
    for name, values in times.items():
        print(f"  {name:40s} {statistics.median(values):6.2f} s")
    print(f"  {'CLI end to end (fresh process)':40s} {cli:6.2f} s   report.html {html_size / 1e6:.2f} MB, "
          f"report.pdf {pages / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
