"""How long the report takes to build (HTML + PDF) for a typical audit directory.

Typical = 14 subspaces, 24 faces in results.parquet with 9 steps and 4 null
directions each, walk strips for 6 subspaces x 4 faces and 8 counterfactuals
(40 face images, 8 difference maps, 3 attribution maps). The audit directory
is the synthetic fixture (tests/report/sample_audit.py): the report does not care
where the numbers came from.

    PYTHONPATH=. python benchmarks/bench_report.py [--repeat 3]

Prints one line per stage (median of the repeats): wall seconds and CPU
seconds of this process (the stages are single-threaded, so on a shared,
loaded machine CPU seconds are the better estimate of the wall time on an
idle one), then the end-to-end wall time of
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

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "report")]  # the synthetic audit fixture and the browser helpers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from iceaudit.report import charts
    from iceaudit.report.model import load_report_model
    from iceaudit.report.render import render_html, render_pdf
    from sample_audit import write_sample_audit

    with tempfile.TemporaryDirectory() as tmp:
        audit = write_sample_audit(Path(tmp) / "audit", n_faces=24, strip_subspaces=5)
        faces = sum(1 for p in (audit / "images").rglob("*.png") if "baselines" not in p.parts and "diff" not in p.name)
        strips = sum(1 for _ in (audit / "images" / "walks").rglob("*.png"))
        names = ["model (read summary, parquet, images)", "charts alone", "html (charts + template)",
                 "pdf (weasyprint)", "total in-process (model + html + pdf)"]
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}

        def clock() -> tuple[float, float]:
            return time.perf_counter(), time.process_time()

        for _ in range(args.repeat):
            t0 = clock()
            model = load_report_model(audit)
            t1 = clock()
            charts.ranking(model)
            for sid in model.detailed:
                charts.curve(model, sid)
            charts.leakage(model)
            charts.regions(model)
            t2 = clock()
            html = render_html(model)
            t3 = clock()
            warnings = render_pdf(html, Path(tmp) / "report.pdf")
            t4 = clock()
            assert not warnings, warnings
            for k, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                wall[names[k]].append(b[0] - a[0])
                cpu[names[k]].append(b[1] - a[1])
            wall[names[4]].append((t1[0] - t0[0]) + (t4[0] - t2[0]))
            cpu[names[4]].append((t1[1] - t0[1]) + (t4[1] - t2[1]))
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "iceaudit", "report", str(audit), "--format", "html,pdf"],
                       check=True, env=env, capture_output=True)
        cli = time.perf_counter() - t0
        pdf_size = (audit / "report.pdf").stat().st_size
        html_size = (audit / "report.html").stat().st_size
        try:
            from browser import pdf_page_count

            pages = str(pdf_page_count(audit / "report.pdf"))
        except Exception:  # poppler not installed
            pages = "?"
        detailed = len(model.detailed)

    print(f"audit: 14 subspaces, {faces} face images ({strips} walk strips), load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores, {args.repeat} repeats (median)")
    print(f"  {'stage':40s} {'wall':>7s} {'cpu':>7s}")
    for name in names:
        print(f"  {name:40s} {statistics.median(wall[name]):6.2f}s {statistics.median(cpu[name]):6.2f}s")
    print(f"  {'CLI end to end (fresh process)':40s} {cli:6.2f}s")
    print(f"report.html {html_size / 1e6:.2f} MB, report.pdf {pdf_size / 1e6:.2f} MB, {pages} pages, "
          f"{detailed} driver pages")


if __name__ == "__main__":
    main()
