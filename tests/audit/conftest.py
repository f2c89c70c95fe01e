"""Shared tiny synthetic world for the audit tests (see audit_synth.py)."""
from __future__ import annotations

import pytest
import torch

from audit_synth import synthetic_bank, tiny_generator, write_world


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # module scope: set before the module-scoped audits run (2 threads on a loaded box crawl)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def bank(G):
    return synthetic_bank(G)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("world"))
