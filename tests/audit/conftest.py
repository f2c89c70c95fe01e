"""Shared tiny synthetic world for the audit tests (see audit_synth.py)."""
from __future__ import annotations

import pytest

from audit_synth import synthetic_bank, tiny_generator, write_world


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def bank(G):
    return synthetic_bank(G)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("world"))
