"""Whether the browser tests can run here: headless Chromium and poppler's tools."""
from __future__ import annotations

import os

import pytest

import browser

INSTALL = "apt-get install chromium poppler-utils"


def require_browser_tools() -> None:
    """Skip (outside CI) or fail (in CI) when headless Chromium or poppler is missing.

    `make test` must pass on a machine without them, and CI (which sets ``CI``) must
    never skip them silently: `.ci/run` installs both.
    """
    try:
        browser.find_chromium()
        for name in ("pdftoppm", "pdftotext", "pdfinfo"):
            browser._tool(name)
    except browser.ToolMissing as err:
        if os.environ.get("CI"):
            pytest.fail(f"{err}: CI must run the browser tests (.ci/run installs them)", pytrace=False)
        pytest.skip(f"{err}; to run the browser tests: {INSTALL}")
