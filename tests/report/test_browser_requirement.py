"""A machine without Chromium/poppler skips the browser tests with the install command; CI fails."""
from __future__ import annotations

import pytest

from browser_tools import INSTALL, require_browser_tools


@pytest.fixture
def no_tools(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")


def test_missing_browser_is_a_skip_naming_the_install_command(no_tools, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        require_browser_tools()
    assert INSTALL in str(info.value)


def test_missing_browser_fails_in_ci(no_tools, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as info:
        require_browser_tools()
    assert "CI must run the browser tests" in str(info.value)
