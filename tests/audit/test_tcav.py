"""TCAV beside the walks (iceaudit/audit/tcav.py) on the synthetic world, whose truth is known:
a module classifier that reads the red channel through a ReLU layer, and subspaces of
which one is the redness direction."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from audit_synth import base_scores, save_script
from iceaudit.audit import AuditSettings, ModelCard, run_audit
from iceaudit.audit.classifier import load_classifier, wrap_classifier
from iceaudit.audit.tcav import run_tcav
from iceaudit.errors import UserError

N = 16


class RedNet(torch.nn.Module):
    """Mean of ReLU features that mostly read the red channel."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(8, 3, 3, 3, generator=g) * 0.1)
            self.conv.weight[:, 0] += 0.5
            self.conv.bias.zero_()
            self.head.weight.fill_(1.0)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))[:, 0]


class Blind(torch.nn.Module):
    """A score that no image changes: its layer gradient is zero, every TCAV score 0."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((1, 2, 3)) * 0.0


def _classifier(G, net):
    thr = float(np.median(base_scores(G, net, N)))
    return wrap_classifier(net, ModelCard(name=type(net).__name__, head="logit", threshold=thr))


@pytest.fixture(scope="module")
def red_audit(G, bank):
    clf = _classifier(G, RedNet())
    res = run_audit(clf, G, bank, AuditSettings.of(n=N, n_steps=5, n_null=6, n_bootstrap=300, progress=False))
    return clf, res


def test_tcav_finds_the_concept_the_classifier_reads(G, bank, red_audit):
    clf, res = red_audit
    out = run_tcav(clf.decision_score, G, res.faces.ws, bank, seeds=list(res.faces.seeds),
                   drivers=res.drivers)
    assert out["status"] == "ok" and out["layer"] == "conv"
    red = out["subspaces"]["redness"]
    assert red["significant"] and red["direction"] == "raises" and red["score"] > 0.9
    controls = np.array(out["random_scores"])
    assert len(controls) == 20 and abs(controls.mean() - 0.5) < 1e-6  # both orders: centred by construction
    row = next(r for r in out["agreement"]["rows"] if r["subspace"] == "redness")
    assert row["walk_significant"] and row["same_call"] and row["same_direction"]


def test_a_blind_classifier_has_no_tcav_concept(G, bank):
    clf = wrap_classifier(Blind(), ModelCard(name="blind", head="logit", threshold=0.0))
    ws = G.mapping(torch.randn(N, G.z_dim, generator=torch.Generator().manual_seed(3)))
    out = run_tcav(clf.decision_score, G, ws, bank, n_random=4)
    assert out["status"] == "ok"
    assert not any(e["significant"] for e in out["subspaces"].values())


def test_tcav_is_skipped_with_the_reason_for_torchscript(G, bank, tmp_path):
    clf = load_classifier(save_script(RedNet(), tmp_path / "red.pt"), ModelCard(name="red", head="logit"))
    out = run_tcav(clf.decision_score, G, G.mapping(torch.randn(4, G.z_dim)), bank)
    assert out["status"] == "skipped" and "TorchScript" in out["reason"]


def test_an_unknown_tcav_layer_is_refused_before_the_audit_runs(G, bank, tmp_path):
    clf = _classifier(G, RedNet())
    with pytest.raises(UserError, match="not a layer"):
        run_audit(clf, G, bank, AuditSettings.of(n=4, progress=False, baselines=["tcav"], tcav_layer="layer4",
                                                 out=tmp_path / "a"))
    assert not (tmp_path / "a" / "summary.json").exists()


def test_the_report_shows_tcav_beside_the_walks(G, bank, tmp_path):
    from iceaudit.report.model import load_report_model
    from iceaudit.report.render import render_html

    clf = _classifier(G, RedNet())
    res = run_audit(clf, G, bank, AuditSettings.of(n=4, n_steps=3, n_null=2, n_bootstrap=200, progress=False,
                                                   baselines=["tcav"], out=tmp_path / "a"))
    assert res.record.baselines.tcav.status == "ok"
    html = render_html(load_report_model(tmp_path / "a"))
    assert 'id="tcav-table"' in html and 'data-path="baselines/tcav/subspaces/redness/score"' in html
