"""See a report as a person would: headless Chromium for the HTML, poppler for the PDF.

Used by the browser tests and to regenerate the screenshot under docs/:

    python tests/browser.py AUDIT_DIR/report.html docs/report-first-page.png

Needs Debian's `chromium` and `poppler-utils` (`.ci/run` installs both).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1"]


class ToolMissing(RuntimeError):
    pass


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    raise ToolMissing("headless Chromium not found: apt-get install chromium (see .ci/run)")


def _tool(name: str) -> str:
    if path := shutil.which(name):
        return path
    raise ToolMissing(f"{name} not found: apt-get install poppler-utils (see .ci/run)")


def _chromium(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="iceaudit-chromium-") as profile:
        return subprocess.run([find_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, check=True)


def dump_dom(html: str | Path) -> str:
    """The DOM after Chromium has loaded the page, serialised."""
    return _chromium(["--dump-dom", Path(html).resolve().as_uri()]).stdout


def screenshot(html: str | Path, png: str | Path, width: int = 1100, height: int = 1400) -> Path:
    """A screenshot of the top of the page (one screen: width x height pixels)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _chromium([f"--window-size={width},{height}", f"--screenshot={png}", Path(html).resolve().as_uri()])
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def pdf_page_count(pdf: str | Path) -> int:
    out = subprocess.run([_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True, timeout=60).stdout
    return int(next(line.split()[-1] for line in out.splitlines() if line.startswith("Pages:")))


def pdf_pages_to_png(pdf: str | Path, out_dir: str | Path, dpi: int = 50, first: int | None = None,
                     last: int | None = None) -> list[Path]:
    """Rasterise PDF pages with pdftoppm; returns the PNG paths in page order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [_tool("pdftoppm"), "-r", str(dpi), "-png"]
    if first:
        args += ["-f", str(first)]
    if last:
        args += ["-l", str(last)]
    subprocess.run([*args, str(pdf), str(out_dir / "page")], check=True, timeout=120, capture_output=True)
    return sorted(out_dir.glob("page-*.png"))


def pdf_text(pdf: str | Path, page: int | None = None) -> str:
    """Text of the PDF (or of one page, 1-based) as pdftotext reads it, layout kept."""
    args = [_tool("pdftotext"), "-layout"]
    if page:
        args += ["-f", str(page), "-l", str(page)]
    return subprocess.run([*args, str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60).stdout


def main(argv: list[str]) -> None:
    """Screenshot of a report's first screen, saved as a small palette PNG (for docs/)."""
    if len(argv) != 2:
        sys.exit("usage: python tests/browser.py REPORT.html OUT.png")
    from PIL import Image

    png = screenshot(argv[0], argv[1], width=1000, height=1300)
    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)
    print(png)


if __name__ == "__main__":
    main(sys.argv[1:])
