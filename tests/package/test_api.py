"""The Python API: an in-memory module audited on the demo world, read back, gated, shown in Jupyter."""
from __future__ import annotations

from html import escape
from pathlib import Path

import pytest
import torch

import iceaudit

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class BorderBrightness(torch.nn.Module):
    """Reads the mean brightness of the image border (the background)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        border = torch.ones_like(x[:1, :1])
        border[..., 8:-8, 8:-8] = 0
        return 10 * ((x * border).sum((1, 2, 3)) / (3 * border.sum()) - 0.2)


CARD = {"name": "border-brightness", "input_size": 64, "value_range": [-1, 1], "head": "logit"}


@pytest.fixture(scope="module")
def api_audit(tmp_path_factory):
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("api") / "audit"
    return iceaudit.audit(BorderBrightness(), CARD, n=6, baselines="none", n_null=3, n_steps=5,
                          subspaces=["background", "skin_tone", "smile"], out=out, progress=False)


def test_in_memory_module_is_audited_and_recorded_as_such(api_audit):
    clf = api_audit.record.classifier
    assert clf.kind == "module" and clf.path is None
    assert len(clf.sha256) == 64  # hash of the state dict, for resume and provenance
    assert list(api_audit.drivers["subspace"]).count("background") == 1
    assert set(api_audit.drivers["subspace"]) == {"background", "skin_tone", "smile"}
    # the module reads the background only: that walk moves its score most
    assert api_audit.drivers.iloc[0]["subspace"] == "background"
    assert set(api_audit.results["subspace"]) >= {"background", "skin_tone", "smile"}


def test_audit_loads_back_gates_and_renders(api_audit, tmp_path):
    again = iceaudit.Audit.load(api_audit.dir)
    assert again.record == api_audit.record
    assert again.results.equals(api_audit.results)
    gate = again.gate("fairness")
    assert gate.policy and gate.outcomes
    html = again._repr_html_()
    assert escape(again.verdict[:40]) in html and html.count("<img") >= 2
    written = again.report(tmp_path, formats=["html"])
    assert written == [tmp_path / "report.html"] and written[0].stat().st_size > 10_000


def test_bad_options_and_classifiers_are_user_errors(tmp_path):
    from iceaudit.errors import UserError

    with pytest.raises(UserError, match="unknown option"):
        iceaudit.audit(BorderBrightness(), CARD, out=tmp_path / "a", no_such_option=1)
    with pytest.raises(UserError, match="nn.Module or a callable"):
        iceaudit.load_classifier(42, CARD)
    with pytest.raises(UserError, match="bank is required"):
        iceaudit.audit(BorderBrightness(), CARD, generator=str(tmp_path / "g.pkl"), out=tmp_path / "b")


def test_quickstart_notebook_runs(tmp_path):
    import nbformat  # the [test] extra (installed by `make test`)
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("text/html" in o.get("data", {}) and "iceaudit" in o["data"]["text/html"] for o in shown)
    assert any("gate passed:" in o.get("text", "") for o in shown)
