"""Concepts from labelled examples (`iceaudit bank add-concept`, `bank sheet --seeds`).

The FaceLab proof labels generated faces by a true factor (read back by FaceLab's factor
reader, which also scores them), fits a concept and checks that it recovers the shipped
subspace of that factor: it moves that factor most, its own effect per unit is within 20%
of the shipped subspace's, and an audit names it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from iceaudit.bank.concept import ConceptSpec, Examples, add_concept, fit_svm, read_examples
from iceaudit.bank.format import load_bank
from iceaudit.errors import UserError
from iceaudit.stylegan2.generate import z_from_seeds

ROOT = Path(__file__).resolve().parent.parent
N_LABELLED = 150


# --- examples -------------------------------------------------------------------

def test_labels_csv_and_seed_lists_give_the_same_examples(tmp_path):
    rows = ["seed,label"] + [f"{s},{'yes' if s % 2 else 'no'}" for s in range(20)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    a = read_examples(labels=tmp_path / "labels.csv")
    (tmp_path / "pos.txt").write_text("\n".join(str(s) for s in range(1, 20, 2)) + "\n")
    neg = tmp_path / "neg"
    neg.mkdir()
    for s in range(0, 20, 2):
        (neg / f"seed{s:04d}.png").write_bytes(b"")
    b = read_examples(positives=tmp_path / "pos.txt", negatives=neg)
    assert dict(zip(a.seeds, a.labels)) == dict(zip(b.seeds, b.labels))
    assert a.digest == b.digest and a.counts == (10, 10)


@pytest.mark.parametrize("text, message", [
    ("seed,label\n1,1\n1,0\n", "labelled both"),
    ("seed,label\n" + "".join(f"{s},1\n" for s in range(10)), "at least 5"),
    ("seed,label\n1,maybe\n", "not one of"),
    ("seed,label\n-3,1\n", "not a seed"),
    ("face,label\n1,1\n", "columns `seed` and `label`"),
])
def test_bad_examples_are_refused_with_the_reason(tmp_path, text, message):
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(UserError, match=message):
        read_examples(labels=tmp_path / "l.csv")


def test_the_svm_finds_a_planted_boundary():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g) * torch.linspace(0.5, 2.0, 16)  # anisotropic, like W
    u = torch.randn(16, generator=g)
    u = u / u.norm()
    v = fit_svm(x, (x @ u) > 0.3)
    assert float(v @ u) > 0.95


def test_with_few_examples_in_many_dimensions_the_svm_solves_the_same_problem_over_their_span():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 300, generator=g)
    y = torch.rand(20, generator=g) > 0.5
    x[y] += 0.3 * torch.randn(300, generator=g)
    span = fit_svm(x, y)  # 20 examples < 300 dims: the span form
    primal = fit_svm(x, y, iters=3000, form="primal")
    assert float(span @ primal) > 0.99999
    many = torch.randn(150, 40, generator=g)  # more examples than dimensions: forced into the span
    labels = many[:, 0] + 0.5 * torch.randn(150, generator=g) > 0
    assert float(fit_svm(many, labels, form="span") @ fit_svm(many, labels, form="primal", iters=3000)) > 0.99999
    with pytest.raises(ValueError):
        fit_svm(x, y, form="dual")


# --- the FaceLab proof ----------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from iceaudit.criteria.eyes import load_eyes
    from iceaudit.facelab.reader import FactorTruth
    from iceaudit.stylegan2.loaders import load_generator

    G = load_generator("demo")
    bank = load_bank(ROOT / "subspace_bank" / "demo")
    truth = FactorTruth()
    seeds = list(range(1000, 1000 + N_LABELLED))
    with torch.no_grad():
        factors = truth(G.synthesis(G.mapping(z_from_seeds(seeds, G.z_dim), None), noise_mode="const"))
    return {"G": G, "bank": bank, "truth": truth, "seeds": seeds, "factors": factors,
            "eyes": load_eyes(None, None, defaults=bank.meta.get("eyes_spec", {})),
            "dir": tmp_path_factory.mktemp("concepts")}


def _examples(demo, factor: str) -> Examples:
    f = demo["factors"][factor]
    return Examples(tuple(demo["seeds"]), tuple(bool(v) for v in (f > f.median())))


def _scorer(demo, factor: str) -> str:
    path = demo["dir"] / f"{factor}.pt"
    if not path.exists():
        torch.jit.trace(demo["truth"].scorer(factor), torch.zeros(2, 3, 64, 64)).save(str(path))
    return str(path)


_CONCEPTS: dict = {}


def _concept(demo, factor: str, twin: str):
    if factor not in _CONCEPTS:
        _CONCEPTS[factor] = add_concept(
            demo["G"], demo["bank"], _examples(demo, factor), ConceptSpec(id=f"my_{factor}"), demo["eyes"],
            scorer=_scorer(demo, factor), truth=demo["truth"], truth_factor=factor, leakage_exempt_ids=[twin],
            exempt_reason=f"the concept names the same attribute as {twin}")
    return _CONCEPTS[factor]


@pytest.mark.parametrize("factor, twin", [("smile", "smile"), ("skin_tone", "skin_tone")])
def test_a_concept_from_labelled_seeds_recovers_the_shipped_subspace(demo, factor, twin):
    bank, report = _concept(demo, factor, twin)
    assert report["passed"], report["reasons"]
    assert report["truth_lead"] == factor
    shipped = demo["bank"][twin].validation
    assert abs(report["own_effect"] / shipped["own_effect"] - 1) <= 0.2, (report["own_effect"], shipped["own_effect"])
    assert report["separation"]["accuracy"] >= 0.8
    assert twin in report["leakage_unchecked"] and twin not in report["leakage"]
    added = bank[f"my_{factor}"]
    assert added.method == "concept-svm" and added.space == "W" and added.verified
    # bounded like the bank's own walks (the shipped bank's valid-range settings), and validated inside
    assert added.valid_range is not None and report["manifold"]["valid_range"] == list(added.valid_range)
    assert report["walked"] == [max(-1.0, added.walk_range[0]), min(1.0, added.walk_range[1])]
    assert bank.meta["concepts"][-1]["examples_sha256"] == _examples(demo, factor).digest
    assert demo["bank"].ids == [s for s in bank.ids if s != f"my_{factor}"]  # the input bank is untouched


def test_an_ice_concept_from_a_scorer_alone_recovers_the_shipped_subspace(demo):
    """No labels: the scorer is ICE's criterion; + raises it, the mouth-open criterion is held."""
    bank, report = add_concept(
        demo["G"], demo["bank"], None, ConceptSpec(id="ice_smile", method="ice", orthogonal_to=["mouth_open"]),
        demo["eyes"], scorer=_scorer(demo, "smile"), truth=demo["truth"], truth_factor="smile",
        leakage_exempt_ids=["smile"], exempt_reason="the same attribute as smile", keep_failing=True)
    assert report["truth_lead"] == "smile", report
    assert report["truth"]["smile"] > 0.5  # + raises the true factor
    shipped = demo["bank"]["smile"].validation
    assert abs(report["own_effect"] / shipped["own_effect"] - 1) <= 0.2, (report["own_effect"], shipped["own_effect"])
    assert abs(report["leakage"]["mouth_open"]) < 0.5  # held by ICE's suppression
    added = bank["ice_smile"]
    assert added.method == "concept-ice" and report["ice"]["null_dim"] < added.basis.shape[1]
    assert "examples_sha256" not in report["concept"] and len(report["concept"]["scorer_sha256"]) == 64
    assert "separation" not in report


def test_methods_refuse_what_they_cannot_fit_from(demo):
    with pytest.raises(UserError, match="needs a --scorer"):
        add_concept(demo["G"], demo["bank"], _examples(demo, "smile"), ConceptSpec(id="x", method="ice"), demo["eyes"])
    with pytest.raises(UserError, match="fits labelled faces"):
        add_concept(demo["G"], demo["bank"], None, ConceptSpec(id="x"), demo["eyes"], scorer=_scorer(demo, "smile"))


def test_a_concept_kept_orthogonal_to_a_subspace_does_not_move_along_it(demo):
    smile = demo["bank"]["smile"]
    bank, report = add_concept(
        demo["G"], demo["bank"], _examples(demo, "smile"),
        ConceptSpec(id="smile_only", space=smile.space, layers=list(smile.layers), orthogonal_to=["mouth_open"]),
        demo["eyes"], keep_failing=True)
    v = bank["smile_only"].basis[0]
    assert float((demo["bank"]["mouth_open"].basis.double() @ v.double()).abs().max()) < 1e-5
    assert report["concept"]["orthogonal_to"] == ["mouth_open"]


def test_an_audit_names_the_concept_as_the_driver_of_a_smile_classifier(demo, tmp_path):
    from iceaudit.audit.classifier import load_card, load_classifier
    from iceaudit.audit.runner import AuditSettings, run_audit
    from iceaudit.bank.format import Bank

    extended, _ = _concept(demo, "smile", "smile")
    walked = Bank(extended.name, extended.generator_fingerprint,
                  [extended[s] for s in ("my_smile", "skin_tone", "background")], extended.meta)
    d = ROOT / "examples" / "facelab"
    clf = load_classifier(d / "smiling.pt", load_card(d / "smiling.toml"))
    res = run_audit(clf, demo["G"], walked, AuditSettings.of(n=12, n_null=4, progress=False, out=tmp_path / "a",
                                                              baselines=[]))
    top = res.drivers[0]
    assert top.subspace == "my_smile" and top.significant and top.beyond_random


# --- the commands ----------------------------------------------------------------

def test_the_labelling_sheet_numbers_every_face(capsys, tmp_path):
    code, _, err = run_cli(capsys, "bank", "sheet", "--generator", "demo", "--seeds", "3-9,40", "--out",
                           str(tmp_path / "sheet.html"))
    assert code == 0, err
    page = (tmp_path / "sheet.html").read_text()
    assert page.count("<img ") == 8 and 'data-seed="40"' in page and "seed,label" in page


def test_add_concept_from_the_command_line(capsys, demo, tmp_path):
    f = demo["factors"]["smile"]
    rows = ["seed,label"] + [f"{s},{int(v > f.median())}" for s, v in zip(demo["seeds"], f)]
    (tmp_path / "smile.csv").write_text("\n".join(rows) + "\n")
    common = ["bank", "add-concept", "--bank", "demo", "--id", "my_smile", "--labels", str(tmp_path / "smile.csv")]

    code, _, err = run_cli(capsys, *common)
    assert code == 2 and "shipped bank" in err  # never written into the package

    code, _, err = run_cli(capsys, *common, "--out", str(tmp_path / "b"), "--leakage-exempt", "smile")
    assert code == 2 and "--reason" in err and not (tmp_path / "b").exists()

    code, out, err = run_cli(capsys, *common, "--out", str(tmp_path / "b"), "--leakage-exempt", "smile",
                             "--reason", "the same attribute as smile", "--tag", "expression")
    assert code == 0, err
    bank = load_bank(tmp_path / "b")
    assert bank.ids[-1] == "my_smile" and bank["my_smile"].tags == ["expression"]
    assert bank.generator_fingerprint == demo["bank"].generator_fingerprint
    reports = json.loads((tmp_path / "b" / "validation.json").read_text())
    assert set(reports) >= {"my_smile", "skin_tone"}  # the extended bank's reports are kept
    assert reports["my_smile"]["leakage_exempt_reason"] == "the same attribute as smile"

    code, _, err = run_cli(capsys, *common, "--out", str(tmp_path / "b"), "--bank", str(tmp_path / "b"))
    assert code == 2 and "already has" in err

    from iceaudit.stylegan2.loaders import save_native
    from tiny_stylegan import tiny_generator

    save_native(tiny_generator(0, w_dim=8, channel_base=64, channel_max=8), tmp_path / "other")
    code, _, err = run_cli(capsys, *common, "--bank", str(tmp_path / "b"), "--id", "again", "--generator",
                           str(tmp_path / "other.safetensors"))
    assert code == 2 and "was built for generator" in err
    assert np.array_equal(load_bank(tmp_path / "b").ids, bank.ids)  # nothing written on a refusal


def test_an_ice_concept_from_the_command_line_needs_only_a_scorer(capsys, demo, tmp_path):
    common = ["bank", "add-concept", "--bank", "demo", "--id", "ice_smile", "--out", str(tmp_path / "b")]
    code, _, err = run_cli(capsys, *common, "--method", "ice")
    assert code == 2 and "--scorer" in err and not (tmp_path / "b").exists()
    code, _, err = run_cli(capsys, *common, "--method", "svm", "--scorer", _scorer(demo, "smile"))
    assert code == 2 and "--labels" in err and not (tmp_path / "b").exists()
    code, _, err = run_cli(capsys, *common, "--space", "W+", "--layers", "a,b", "--labels", "x.csv")
    assert code == 2 and "--layers" in err
    f = demo["factors"]["smile"]
    (tmp_path / "l.csv").write_text("seed,label\n" + "".join(f"{s},{int(v > f.median())}\n"
                                                            for s, v in zip(demo["seeds"][:20], f)))
    code, _, err = run_cli(capsys, *common, "--space", "S", "--layers", "nope", "--labels", str(tmp_path / "l.csv"))
    assert code == 2 and "style layers ['nope'] do not exist" in err and not (tmp_path / "b").exists()

    code, _, err = run_cli(capsys, *[a for a in common if a not in ("--id", "ice_smile")], "--method", "ice",
                           "--scorer", _scorer(demo, "smile"))
    assert code == 2 and "--id" in err and not (tmp_path / "b").exists()

    named = [a for a in common if a not in ("--id", "ice_smile")] + ["--name", "ICE smile"]
    code, out, err = run_cli(capsys, *named, "--method", "ice", "--scorer", _scorer(demo, "smile"),
                             "--leakage-exempt", "smile", "--reason", "the same attribute as smile")
    assert code == 0, err
    added = load_bank(tmp_path / "b")["ice_smile"]  # the id made from --name
    assert added.method == "concept-ice" and added.verified and "separation" not in out
