"""Synthetic audit directories (tests/report/sample_audit.py) shared by the report and gate tests."""
from __future__ import annotations

import logging

import pytest

from sample_audit import write_sample_audit


@pytest.fixture(scope="session")
def shortcut_audit(tmp_path_factory):
    """Full fixture with images: a smile detector with a planted skin-tone shortcut."""
    return write_sample_audit(tmp_path_factory.mktemp("shortcut"), n_faces=16)


@pytest.fixture(scope="session")
def honest_audit(tmp_path_factory):
    """Summary and parquet only: the same detector without the shortcut."""
    return write_sample_audit(tmp_path_factory.mktemp("honest"), n_faces=16, honest=True, images=False)


@pytest.fixture(scope="session")
def built_report(shortcut_audit, tmp_path_factory):
    """report.html and report.pdf for the shortcut fixture, held to the fairness policy."""
    import contextlib
    import io
    from pathlib import Path

    from iceaudit.cli import main

    policy = Path(__file__).resolve().parents[2] / "examples" / "policies" / "fairness.toml"
    out = tmp_path_factory.mktemp("report")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as exc:
        main(["report", str(shortcut_audit), "--format", "html,pdf", "--policy", str(policy), "--out", str(out)])
    assert exc.value.code in (0, None)
    html, pdf = out / "report.html", out / "report.pdf"
    assert html.is_file() and pdf.is_file()
    return html, pdf, printed.getvalue()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def weasyprint_warnings():
    """Any warning on the `weasyprint` logger (e.g. an image it could not load) fails the test.

    A test that provokes warnings on purpose requests this fixture and clears the list.
    """
    handler = _Collect()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
    if handler.records:
        pytest.fail("weasyprint warned: " + "; ".join(r.getMessage() for r in handler.records), pytrace=False)
