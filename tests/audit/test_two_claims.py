"""Two claims per subspace on white-box classifiers whose truth is known: *effect* (moving it
changes the decision — what `significant`, the verdict and the fairness rules use) and
*specificity* (`beyond_random`: more than random edits of the same visual size)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from audit_synth import MeanRed, base_scores, save_script
from iceaudit.audit import AuditSettings, ModelCard, load_classifier, run_audit
from iceaudit.gate import evaluate, load_policy
from iceaudit.resources import shipped_policy

N = 24


def _audit(G, bank, module, tmp_path, name):
    thr = float(np.median(base_scores(G, module, N)))
    clf = load_classifier(save_script(module, tmp_path / f"{name}.pt"), ModelCard(name=name, head="logit", threshold=thr))
    return run_audit(clf, G, bank, AuditSettings.of(n=N, n_steps=5, n_null=6, n_bootstrap=500, progress=False,
                                                    out=tmp_path / name))


class PeakedRed(torch.nn.Module):
    """Score peaks at a middle redness: -(mean red - centre)^2. Walking towards more red raises
    the score of faces below the centre and lowers it for those above: a sign that differs
    across faces, with a mean slope near zero."""

    def __init__(self, centre: float) -> None:
        super().__init__()
        self.centre = centre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x[:, 0].mean(dim=(1, 2)) - self.centre) ** 2) * 100


@pytest.fixture(scope="module")
def peaked(G, bank, tmp_path_factory):
    centre = float(np.median(base_scores(G, MeanRed(), N)))
    return _audit(G, bank, PeakedRed(centre), tmp_path_factory.mktemp("peaked"), "peaked")


def test_a_pixel_statistic_shortcut_is_a_significant_and_specific_driver_and_fails_fairness(G, bank, tmp_path):
    res = _audit(G, bank, MeanRed(), tmp_path, "red")
    top = res.drivers[0]
    assert top.subspace == "redness" and top.significant and top.effect and top.beyond_random
    assert top.p_effect_adjusted < 0.01 and top.flip_rate > 0.5 and not top.mixed_sign
    gate = evaluate(load_policy(shipped_policy("fairness")), res.record)  # redness is tagged protected
    assert not gate.passed
    failed = [o for o in gate.outcomes if not o.passed]
    assert failed and {o.subject for o in failed} == {"redness"}


def test_an_effect_whose_sign_differs_across_faces_is_flagged_not_hidden(peaked):
    d = {x.subspace: x for x in peaked.drivers}["redness"]
    assert d.mixed_sign and d.significant
    assert d.extra.up_share >= 0.2 and d.extra.down_share >= 0.2
    assert abs(d.slope) < 0.8 * d.extra.mean_abs_slope  # the mean slope alone understates it
    assert peaked.drivers[0].subspace == "redness"  # ranked by its per-face size
    assert "a sign that differs across faces" in peaked.record.verdict


def test_a_classifier_reacting_to_any_change_has_effects_without_specificity(G, bank, tmp_path):
    """Mean brightness of the whole image: every walk that changes the image moves it."""

    class Brightness(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(1, 2, 3))

    res = _audit(G, bank, Brightness(), tmp_path, "bright")
    effects = [d for d in res.drivers if d.significant]
    assert effects, [(d.subspace, d.flip_rate) for d in res.drivers]
    random_subspaces = [d for d in res.drivers if d.subspace.endswith("_random")]
    assert not any(d.beyond_random for d in random_subspaces)  # random subspaces are never specific
    if not any(d.beyond_random for d in effects):
        assert "low specificity" in res.record.verdict


def test_gate_rules_on_both_claims(peaked, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('''name = "two claims"
[[rule]]
name = "no specific effect"
subspace = "redness"
must_not_be_beyond_random = true

[[require]]
name = "a specific driver"
subspace = "redness"
must_be_beyond_random = true
''')
    result = evaluate(load_policy(policy), peaked.record)
    d = peaked.record.driver("redness")
    outcome = {o.rule: o for o in result.outcomes}
    assert outcome["no specific effect"].passed == (not d.beyond_random)
    assert outcome["a specific driver"].passed == bool(d.significant and d.beyond_random)  # require: both
