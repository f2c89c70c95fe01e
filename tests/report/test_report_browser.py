"""The report as a person sees it: the HTML in headless Chromium, the PDF as page images and text.

Needs Debian's chromium and poppler-utils; `.ci/run` installs them. On a machine without them
these tests are skipped with the install command, so `make test` passes on its own; in CI
(`CI` set) a missing tool is a failure, so CI always runs them.
"""
from __future__ import annotations

import re
from html import unescape

import numpy as np
import pytest
from PIL import Image

from browser_tools import require_browser_tools
import browser
from record_helpers import summary_json

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tools():
    require_browser_tools()


def words(text: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", text)).replace("\u00ad", "").split())


def not_blank(png) -> float:
    """Standard deviation of grey levels: ~0 for an empty page."""
    return float(np.asarray(Image.open(png).convert("L"), dtype=np.float32).std())


def test_chromium_dom_shows_verdict_every_driver_and_all_images(tools, built_report, shortcut_audit):
    html, _, _ = built_report
    dom = browser.dump_dom(html)
    summary = summary_json(shortcut_audit)
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
    summary = summary_json(shortcut_audit)
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


def test_pdf_baselines_pages_show_maps_agreement_and_unnamed_drivers(tools, built_report, shortcut_audit, tmp_path):
    _, pdf, _ = built_report
    base = summary_json(shortcut_audit)["baselines"]
    n = browser.pdf_page_count(pdf)
    texts = [words(browser.pdf_text(pdf, page=k)) for k in range(1, n + 1)]
    first = next(k for k, t in enumerate(texts) if "Beside the walks: standard attribution methods" in t)
    last = next(k for k, t in enumerate(texts) if "Can these results be trusted?" in t)
    section = " ".join(texts[first:last])
    assert words(base["agreement"]["statement"]) in section
    for heading in ("Where the classifier looks", "Attribution by face region", "Do the methods rank the attributes",
                    "Walks beside latent attribution", "Drivers the bank does not name", "How trustworthy", "Methods not run"):
        assert heading in section, heading
    assert "Grad-CAM" in section and words(base["pixel"]["gradcam"]["reason"]) in section
    for u in base["attfind"]["unnamed_drivers"]:
        assert f"Channel {u['channel']}" in section and f"{u['mean_effect']:+.3g}".replace("-", "−") in section
    rho = base["agreement"]["walk_vs_latent"]["rho"]
    assert f"{rho:+.3g}".replace("-", "−") in section
    pages = browser.pdf_pages_to_png(pdf, tmp_path, dpi=30, first=first + 1, last=last)
    assert len(pages) == last - first and all(not_blank(p) > 5 for p in pages)


def test_chromium_shows_every_attribution_map_and_walk_strip(tools, built_report, shortcut_audit):
    dom = browser.dump_dom(built_report[0])
    base = summary_json(shortcut_audit)["baselines"]
    section = dom[dom.index('id="baselines"'):dom.index('id="validity"')]
    ok = [m for m, e in base["pixel"].items() if e["status"] == "ok"]
    assert section.count('class="map-img"') == len(ok)
    assert section.count('class="unnamed-strip"') == len(base["attfind"]["unnamed_drivers"])
    assert "image missing" not in section


def _viewer(dom: str, sid: str) -> str:
    start = dom.index(f'data-subspace="{sid}" data-frames=')
    return dom[dom.rindex("<div", 0, start): dom.index('<div class="strips">', start)]


def test_walk_viewer_slider_changes_frame_and_score_offline(tools, built_report, shortcut_audit, tmp_path):
    """Drive the slider in headless Chromium: move it to the last step of the first driver's walk;
    the viewer must show the last frame of every face and that frame's score."""
    html, _, _ = built_report
    page = html.read_text()
    assert not re.search(r'(src|href)="https?:', page), "the report must not reach the network"
    summary = summary_json(shortcut_audit)
    sid = next(iter(summary["walk_strips"]))
    entries = summary["walk_strips"][sid]
    last = len(entries[0]["alphas"]) - 1
    drive = (f"<script>var v = document.querySelector('.walk-viewer[data-subspace=\"{sid}\"]');"
             f"var s = v.querySelector('.walk-slider'); s.value = {last};"
             "s.dispatchEvent(new Event('input'));</script></body>")
    driven = tmp_path / "driven.html"
    driven.write_text(page.replace("</body>", drive))
    before, after = _viewer(browser.dump_dom(html), sid), _viewer(browser.dump_dom(driven), sid)
    assert "hidden" not in before.split(">")[0]  # the script showed the viewer
    assert "Walk viewer" not in browser.pdf_text(built_report[1])  # the PDF keeps the static strips
    assert 'data-frame="' + str(last) + '"' in after and 'data-frame="' + str(last) + '"' not in before
    assert "background-position: 100% 0%" in after
    section = page[page.index(f'id="driver-{sid}"'):]
    section = section[: section.index("</section>")]
    static = [re.findall(r'class="score[^"]*" data-value="([^"]*)"', fig)[last]  # the static strips' last scores
              for fig in section.split('<figure class="strip"')[1:]]
    shown = re.findall(r'class="walk-score[^"]*"[^>]*>([^<]*)<', after)
    assert shown == [f"{float(v):.3f}" for v in static] and len(shown) == len(entries)
    assert f"{entries[0]['alphas'][last]:+.2f} units" in after


def test_diff_page_shows_every_shared_subspace_in_chromium(tools, honest_audit, shortcut_audit, tmp_path):
    from iceaudit.cli import main

    page = tmp_path / "diff.html"
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(honest_audit), str(shortcut_audit), "--html", str(page)])
    assert exc.value.code in (0, None)
    dom = browser.dump_dom(page)
    shared = {d["subspace"] for d in summary_json(honest_audit)["drivers"]} & \
        {d["subspace"] for d in summary_json(shortcut_audit)["drivers"]}
    assert set(re.findall(r'<tr data-subspace="([^"]+)"', dom)) == shared
    assert "Newly significant protected attributes: skin_tone" in words(dom)
