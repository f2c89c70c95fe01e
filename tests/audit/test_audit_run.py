"""End-to-end audits on the tiny synthetic world: truth, null cases, determinism, resume, outputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audit_synth import Constant, RandomNet, redness_classifier, save_script
from iceaudit.audit import AuditSettings, ModelCard, load_card, load_classifier, run_audit
from iceaudit.bank.format import load_bank
from iceaudit.stylegan2.loaders import load_generator
from iceaudit.cli import main
from iceaudit.errors import UserError
from record_helpers import summary_json

N = 24


def settings(**kw):
    base = dict(n=N, n_steps=5, n_null=6, n_bootstrap=500, progress=False, strip_faces=2, n_counterfactual_images=3)
    base.update(kw)
    return AuditSettings.of(**base)


@pytest.fixture(scope="module")
def red_audit(G, bank, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("red")
    clf = redness_classifier(G, tmp, N)
    return run_audit(clf, G, bank, settings(out=tmp / "audit"))


def test_known_driver_is_the_significant_top_driver(red_audit):
    d = red_audit.drivers
    assert d[0].subspace == "redness" and d[0].rank == 1 and d[0].significant and d[0].effect
    assert d[0].slope > 0 and d[0].ci_low > 0  # walking towards more red raises the red score
    assert d[0].flip_rate > 0.5 and d[0].monotonicity > 0.9
    assert abs(d[0].extra.end_slope) > d[0].null_abs_slope and d[0].beyond_random  # and specifically
    # the random subspaces change the image too, so they may move a pixel-statistic classifier
    # (an effect), but never more than random edits of their size
    assert [x.beyond_random for x in d[1:]] == [False] * (len(d) - 1)
    assert all(x.p_effect_adjusted >= x.p_effect for x in d)
    fair = summary_json(red_audit)["fairness"]
    assert fair["protected"] == ["redness"] and fair["findings"][0]["significant"] is True


def test_counterfactuals_flip_and_are_saved(red_audit):
    cf = red_audit.counterfactuals
    red = cf[cf["subspace"] == "redness"]
    assert len(red) > N / 2
    # a counterfactual really crosses the threshold, and not farther than the range
    thr = summary_json(red_audit)["classifier"]["threshold"]
    assert np.all((red["score_before"] > thr) != (red["score_after"] > thr))
    assert np.all(red["step"].abs() <= 2.0)
    per = summary_json(red_audit)["counterfactuals"]["per_subspace"]["redness"]
    assert np.isclose(per["success_rate"], len(red) / N)
    assert np.isclose(per["median_step"], red["step"].abs().median())
    # positive faces need a negative step (less red) and vice versa
    assert np.all(np.sign(red["step"]) == np.where(red["score_before"] > thr, -1, 1))
    out = red_audit.out
    best = summary_json(red_audit)["counterfactuals"]["best"]
    assert len(best) == 3
    for b in best:
        for key in ("original", "counterfactual", "diff", "pair"):
            assert (out / b[key]).is_file()
    pf = red_audit.per_face
    flipped = pf[pf["best_subspace"].notna()]
    for row in flipped.itertuples():
        steps = cf[cf["sample"] == row.sample]
        assert row.best_subspace == steps.loc[steps["step"].abs().idxmin(), "subspace"]


def test_outputs_follow_the_contract(red_audit):
    out = red_audit.out
    summary = summary_json(out)
    for key in ("classifier", "generator", "bank", "settings", "verdict", "drivers", "counterfactuals",
                "fairness", "validity", "provenance", "walk_strips"):
        assert key in summary
    prov = summary["provenance"]
    assert len(prov["hashes"]["classifier"]) == 64 and len(prov["hashes"]["bank"]) == 64
    assert prov["hashes"]["generator"] == summary["generator"]["fingerprint"]
    assert prov["torch"] == torch.__version__ and prov["created"].endswith("Z")
    assert summary["validity"]["null_floor"]["n_per_subspace"] == 6
    res = pd.read_parquet(out / "results.parquet")
    assert {"sample", "subspace", "alpha", "score"} <= set(res.columns)
    assert len(res[res["subspace"] == "redness"]) == N * 5
    assert len(res[res["subspace"] == "null:redness:5"]) == N * 2  # nulls: the two ends of the range
    strip = summary["walk_strips"]["redness"][0]
    assert (out / strip["image"]).is_file() and 0.0 in strip["alphas"]
    from PIL import Image

    assert Image.open(out / strip["image"]).size == (16 * len(strip["alphas"]), 16)


def test_constant_classifier_has_no_driver(G, bank, tmp_path):
    clf = load_classifier(save_script(Constant(), tmp_path / "c.pt"), ModelCard(threshold=0.0))
    r = run_audit(clf, G, bank, settings())
    assert not any(d.significant for d in r.drivers)
    assert all(d.slope == 0 and d.flip_rate == 0 and d.p_value == 1.0 for d in r.drivers)
    assert len(r.counterfactuals) == 0


def test_random_network_has_no_significant_driver(G, bank, tmp_path):
    clf = load_classifier(save_script(RandomNet(seed=3), tmp_path / "r.pt"), ModelCard(head="softmax", index=1))
    probe = torch.rand(4, 3, 16, 16) * 2 - 1
    before = clf.decision_score(probe)
    r = run_audit(clf, G, bank, settings(sanity=True))
    assert any(abs(d.slope) > 0 for d in r.drivers)  # it does respond to the image...
    assert not any(d.significant for d in r.drivers)  # ...but to no subspace more than to random directions
    sanity = summary_json(r)["validity"]["sanity"]["randomised_classifier"]
    assert sanity["passed"] is True and sanity["n_significant"] == 0 and sanity["max_abs_slope"] > 0
    assert torch.equal(clf.decision_score(probe), before)  # the audited model itself was not touched


def test_partial_synthesis_matches_full(G, bank, tmp_path):
    clf = redness_classifier(G, tmp_path, N)
    kw = dict(n=6, subspaces=["wplus_random", "s_random"], n_null=2)
    a = run_audit(clf, G, bank, settings(**kw))
    b = run_audit(clf, G, bank, settings(partial=False, **kw))
    assert np.allclose(a.results["score"], b.results["score"], atol=1e-5)
    # counterfactual bisection (prefix state cached across its renders) agrees with full synthesis
    ca, cb = a.counterfactuals, b.counterfactuals
    assert len(ca) > 0 and ca[["sample", "subspace"]].equals(cb[["sample", "subspace"]])
    assert np.allclose(ca["step"], cb["step"], atol=1e-4)


def test_same_seed_same_numbers(G, bank, tmp_path):
    clf = redness_classifier(G, tmp_path, N)
    a = run_audit(clf, G, bank, settings(n=8, seed=5))
    b = run_audit(clf, G, bank, settings(n=8, seed=5))
    c = run_audit(clf, G, bank, settings(n=8, seed=6))
    pd.testing.assert_frame_equal(a.results, b.results)
    assert [d.__dict__ for d in a.drivers] == [d.__dict__ for d in b.drivers]
    assert not np.allclose(a.results["score"], c.results["score"])
    assert a.faces.seeds.tolist() == list(range(5, 13))


RUNNER = r"""
import sys, time, torch
sys.path[:0] = [{tests!r}, {tests_root!r}]
torch.set_num_threads(1)
from audit_synth import MeanRed
from iceaudit.audit import AuditSettings, load_card, load_classifier, run_audit
from iceaudit.bank.format import load_bank
from iceaudit.stylegan2.loaders import load_generator

class Slow(torch.nn.Module):  # slows each batch so the test can kill the run between shards
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        time.sleep({sleep})
        return self.inner(x)

clf = load_classifier({classifier!r}, load_card({card!r}))
clf.model = Slow(clf.model)
G = load_generator({generator!r})
run_audit(clf, G, load_bank({bank!r}), AuditSettings.of(n=8, n_steps=5, n_null=3, n_bootstrap=300, progress=False,
          batch_images=16, out={out!r}, resume={resume}, strip_faces=2, n_counterfactual_images=2))
"""


def _script(world, out, resume, sleep):
    return RUNNER.format(tests=str(Path(__file__).parent), tests_root=str(Path(__file__).parents[1]),
                         classifier=str(world["classifier"]), card=str(world["card"]),
                         generator=str(world["generator"]), bank=str(world["bank"]), out=str(out), resume=resume,
                         sleep=sleep)


def _run(code):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_audit_resumes_to_the_same_result(world, tmp_path):
    killed = tmp_path / "killed"
    proc = _run(_script(world, killed, False, 0.05))
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "checkpoint").glob("*.walks.parquet")):
        assert proc.poll() is None, proc.communicate()[1].decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shards = list((killed / "checkpoint").glob("*.walks.parquet"))
    assert 1 <= len(shards) < 4 and not (killed / "summary.json").exists()
    # a plain rerun refuses the half-written directory, resume finishes it
    with pytest.raises(UserError, match="not empty"):
        from iceaudit.audit.runner import check_out

        check_out(killed, resume=False)
    # resume here (same code, one thread, as in the killed process) and compare with an uninterrupted run
    for out, resume in ((killed, True), (tmp_path / "whole", False)):
        clf = load_classifier(world["classifier"], load_card(world["card"]))
        run_audit(clf, load_generator(world["generator"]), load_bank(world["bank"]),
                  AuditSettings.of(n=8, n_steps=5, n_null=3, n_bootstrap=300, progress=False, batch_images=16,
                                out=out, resume=resume, strip_faces=2, n_counterfactual_images=2))
    a, b = summary_json(killed), summary_json(tmp_path / "whole")
    assert a["drivers"] == b["drivers"] and a["counterfactuals"]["per_subspace"] == b["counterfactuals"]["per_subspace"]
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "results.parquet"), pd.read_parquet(tmp_path / "whole" / "results.parquet"))


def test_resume_refuses_other_settings(G, bank, tmp_path):
    clf = redness_classifier(G, tmp_path, N)
    run_audit(clf, G, bank, settings(n=4, n_null=2, subspaces=["s_random"], out=tmp_path / "a"))
    with pytest.raises(UserError, match="seed differ"):
        run_audit(clf, G, bank, settings(n=4, n_null=2, subspaces=["s_random"], seed=1, out=tmp_path / "a", resume=True))


def test_out_dir_errors_exit_2_and_keep_files(world, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("precious")
    base = ["audit", "--classifier", str(world["classifier"]), "--card", str(world["card"]), "--generator",
            str(world["generator"]), "--bank", str(world["bank"]), "--n", "4"]
    for out, extra, message in ((busy, [], "is not empty"), (busy, ["--resume"], "holds no interrupted audit"),
                                (busy / "keep.txt", [], "is not a directory")):
        with pytest.raises(SystemExit) as exc:
            main([*base, "--out", str(out), *extra])
        assert exc.value.code == 2
        assert message in " ".join(capsys.readouterr().err.split())
    assert (busy / "keep.txt").read_text() == "precious" and sorted(p.name for p in busy.iterdir()) == ["keep.txt"]


def test_cli_audit_writes_the_directory(world, tmp_path, capsys):
    out = tmp_path / "cli"
    with pytest.raises(SystemExit) as exc:
        main(["audit", "--classifier", str(world["classifier"]), "--card", str(world["card"]), "--generator",
          str(world["generator"]), "--bank", str(world["bank"]), "--n", "6", "--steps", "3", "--null", "2",
              "--seed", "3", "--baselines", "saliency,feature_ablation", "--out", str(out)])
    assert exc.value.code == 0
    summary = json.loads((out / "summary.json").read_text())
    pixel = summary["baselines"]["pixel"]
    assert pixel["saliency"]["status"] == "ok"
    assert pixel["feature_ablation"]["status"] == "skipped" and "parser" in pixel["feature_ablation"]["reason"]
    assert summary["settings"]["n_samples"] == 6 and summary["settings"]["seed"] == 3
    assert "--seed 3" in summary["provenance"]["command"]
    assert summary["provenance"]["card_path"] == str(world["card"])
    assert "redness" in capsys.readouterr().out


def test_bank_of_another_generator_is_refused(bank, tmp_path, world):
    from audit_synth import tiny_generator

    other = tiny_generator(seed=1)
    clf = load_classifier(world["classifier"], load_card(world["card"]))
    with pytest.raises(UserError, match="was built for generator"):
        run_audit(clf, other, bank, settings(out=tmp_path / "x"))
    assert not (tmp_path / "x").exists()  # refused before anything was written
    r = run_audit(clf, load_generator(world["generator"]), str(world["bank"]), settings(n=4, n_null=2, subspaces=["s_random"]))
    assert summary_json(r)["bank"]["path"] == str(world["bank"])  # a bank directory works as well as a Bank


def test_faces_follow_the_official_seed_convention(G):
    from iceaudit.audit.sample import sample_faces

    faces = sample_faces(G, 3, seed=41, psi=0.7, batch_size=2)
    z = torch.from_numpy(np.random.RandomState(42).randn(G.z_dim)).float()[None]
    assert faces.seeds.tolist() == [41, 42, 43]
    assert torch.allclose(faces.ws[1:2], G.mapping(z, None, psi=0.7), atol=1e-6)
    with pytest.raises(UserError, match="at least 2"):
        sample_faces(G, 1)


class _HalvesParser:
    """Criteria-style parser: logits over two parts, the image's top and bottom halves."""

    labels = ["top", "bottom"]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        bottom = (torch.arange(h) >= h // 2).float().view(1, 1, h, 1).expand(n, 1, h, w)
        return torch.cat([1 - bottom, bottom], dim=1)


def test_baselines_run_inside_the_audit_with_a_parser(G, bank, tmp_path):
    clf = redness_classifier(G, tmp_path, N)
    result = run_audit(clf, G, bank, settings(n=4, n_null=2, subspaces=["s_random"], out=tmp_path / "a",
                                              baselines=["feature_ablation"], parser=_HalvesParser()))
    entry = summary_json(result)["baselines"]["pixel"]["feature_ablation"]
    assert entry["status"] == "ok"
    assert sorted(entry["region_ranking"]) == ["bottom", "top"]
    assert summary_json(tmp_path / "a")["baselines"]["pixel"]["feature_ablation"] == entry


def test_the_report_gets_the_banks_own_validation_figures():
    from pathlib import Path

    from iceaudit.audit.provenance import bank_validity as _bank_validity
    from iceaudit.bank.format import load_bank

    bank = load_bank(Path(__file__).resolve().parents[2] / "subspace_bank" / "demo")
    val = _bank_validity(bank)
    assert set(val["own_criterion"]) == set(bank.ids)
    skin = val["own_criterion"]["skin_tone"]
    assert skin.effect_per_unit == bank["skin_tone"].validation["own_effect"] and skin.ok
    assert "lip_colour" in val["leakage"]["mouth_open"]  # exempt targets are still shown
    assert _bank_validity(type(bank)(name="x", generator_fingerprint="f", subspaces=[], meta={})) == {}


def test_null_floor_is_the_quantile_it_states(red_audit):
    floor = summary_json(red_audit)["validity"]["null_floor"]
    pooled = np.abs(np.concatenate([v["null_slopes"] for v in floor["per_subspace"].values()]))
    assert floor["quantile"] == 0.975
    assert np.isclose(floor["abs_slope"], np.quantile(pooled, floor["quantile"]))
    assert not np.isclose(floor["abs_slope"], np.quantile(pooled, 0.95))


def test_multi_row_subspaces_say_only_the_principal_direction_is_walked(red_audit, bank):
    rows = {s.id: s.basis.shape[0] for s in bank.subspaces}
    assert max(rows.values()) > 1
    for d in red_audit.drivers:
        assert d.extra.basis_rows == rows[d.subspace] and d.extra.rows_audited == 1
