"""The report as a person sees it: the HTML in headless Chromium, the PDF as page images and text.

Needs Debian's chromium and poppler-utils; `.ci/run` installs them. Without them these
tests fail (they are not skipped): deselect with `-m "not browser"` on a machine without them.
"""
from __future__ import annotations

import re
from html import unescape

import numpy as np
import pytest
from PIL import Image

from iceaudit.report import browser
from iceaudit.summary import load_summary

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tools():
    try:
        browser.find_chromium()
        for name in ("pdftoppm", "pdftotext", "pdfinfo"):
            browser._tool(name)
    except browser.ToolMissing as err:
        pytest.fail(f"{err} (or deselect with -m 'not browser')", pytrace=False)


def words(text: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", text)).replace("\u00ad", "").split())


def not_blank(png) -> float:
    """Standard deviation of grey levels: ~0 for an empty page."""
    return float(np.asarray(Image.open(png).convert("L"), dtype=np.float32).std())


def test_chromium_dom_shows_verdict_every_driver_and_all_images(tools, built_report, shortcut_audit):
    html, _, _ = built_report
    dom = browser.dump_dom(html)
    summary = load_summary(shortcut_audit)
    assert words(summary["verdict"]) in words(dom)
    table = dom[dom.index('id="driver-table"'):]
    table = table[: table.index("</table>")]
    for d in summary["drivers"]:
        assert f'data-subspace="{d["subspace"]}"' in table and f"<td>{d['name']}</td>" in table
    assert "image missing" not in dom
    assert dom.count("<img") >= 40


def test_chromium_screenshot_of_first_screen_is_a_page(tools, built_report, tmp_path):
    png = browser.screenshot(built_report[0], tmp_path / "shot.png", width=1000, height=1200)
    im = Image.open(png)
    assert im.size == (1000, 1200)
    assert not_blank(png) > 20
    top = np.asarray(im.convert("RGB"), dtype=np.int16)[:400]
    # the yellow "synthetic data" banner and the verdict's blue bar are drawn
    assert ((top[..., 0] > 240) & (top[..., 1] > 230) & (top[..., 2] < 225)).sum() > 1000


def test_pdf_pages_text_and_page_numbers(tools, built_report, shortcut_audit, tmp_path):
    _, pdf, _ = built_report
    n = browser.pdf_page_count(pdf)
    summary = load_summary(shortcut_audit)
    assert 8 <= n <= 30
    pages = browser.pdf_pages_to_png(pdf, tmp_path, dpi=30)
    assert len(pages) == n
    assert all(not_blank(p) > 5 for p in pages)
    first = browser.pdf_text(pdf, page=1)
    assert words(summary["verdict"]) in words(first)
    assert f"Page 1 of {n}" in first and f"Page {n} of {n}" in browser.pdf_text(pdf, page=n)
    # each driver's page holds its whole story: title, numbers and its faces (no figure split off)
    texts = [words(browser.pdf_text(pdf, page=k)) for k in range(1, n + 1)]
    for sid, name in (("smile", "smile"), ("skin_tone", "skin tone")):
        d = next(x for x in summary["drivers"] if x["subspace"] == sid)
        unit = next(s["unit"] for s in summary["bank"]["subspaces"] if s["id"] == sid)
        page = next(t for t in texts if f"One unit = {unit}" in t)
        assert "Faces along the walk" in page and f"Moving {name} by one unit" in page
        assert f"{d['slope']:+.3g}".replace("-", "−") in page
