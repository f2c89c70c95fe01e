"""Synthetic audit directories (iceaudit.report.sample) shared by the report and gate tests."""
from __future__ import annotations

import pytest

from iceaudit.report.sample import write_sample_audit


@pytest.fixture(scope="session")
def shortcut_audit(tmp_path_factory):
    """Full fixture with images: a smile detector with a planted skin-tone shortcut."""
    return write_sample_audit(tmp_path_factory.mktemp("shortcut"), n_faces=16)


@pytest.fixture(scope="session")
def honest_audit(tmp_path_factory):
    """Summary and parquet only: the same detector without the shortcut."""
    return write_sample_audit(tmp_path_factory.mktemp("honest"), n_faces=16, honest=True, images=False)
