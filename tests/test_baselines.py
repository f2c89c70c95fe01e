"""Baselines: Captum by region, latent attribution, AttFind, agreement.

Everything runs on `baselines_world`: a 16x16 random-weight style generator
and classifiers whose dependence is known by construction.
"""
from __future__ import annotations

import json

import pytest
import torch

from baselines_world import (
    LABELS,
    FixedParser,
    RegionReader,
    SmallCNN,
    TinyStyleGenerator,
    channel_probe,
    fixed_label_map,
    s_subspace,
    sample_ws,
    tiny_bank,
    w_subspace,
)
from iceaudit.audit.agreement import compare, spearman, subspace_region
from iceaudit.audit.attfind import run_attfind, style_effects
from iceaudit.audit.baselines import DEFAULT_METHODS, parse_methods, run_baselines
from iceaudit.audit.latent_attribution import latent_attribution
from iceaudit.audit.localise import vote_regions
from iceaudit.audit.pixel_attribution import (
    MethodSkipped,
    attribute_pixels,
    rank_regions,
    region_importance,
    region_shares,
)
from iceaudit.audit.style_space import subspace_in_s, to_style_space
from iceaudit.errors import UserError
from iceaudit.record import Driver
from iceaudit.record.codec import to_json

PLANTED = ("b8.conv1", 2)


@pytest.fixture(scope="module")
def world():
    G = TinyStyleGenerator()
    ws = sample_ws(G, 16)
    images = G.synthesis(ws).clamp(-1, 1)
    return G, ws, images


def _bank(G):
    return tiny_bank(G, [
        s_subspace(G, "planted", [PLANTED, ("b8.conv1", 5)], name="smile", tags=["smile"]),
        s_subspace(G, "early", [("b4.conv1", 3), ("b8.conv0", 1)], name="face shape", tags=["face shape"]),
        w_subspace(G, "w_dense", 1, tags=["hair"]),
        w_subspace(G, "w_plus", 2, space="W+", layers=[2, 3], tags=["eyes"]),
    ])


# --- pixel baselines by region --------------------------------------------------------


@pytest.mark.parametrize("region", ["mouth", "eyes"])
def test_gradient_methods_put_the_mass_in_the_region_the_classifier_reads(world, region):
    _, _, images = world
    f, lm = RegionReader(region), fixed_label_map(len(images))
    for method in ("saliency", "input_x_gradient", "ig_blur", "ig_mean", "smoothgrad"):
        shares = region_shares(attribute_pixels(f, images, method, n_steps=8, nt_samples=4), lm, LABELS)
        assert shares[region]["mass_share"] > 0.9, (method, shares[region])
        assert rank_regions(shares)[0] == region, method
    # occlusion windows straddle the part's border, so mass spills to neighbours
    occ = region_shares(attribute_pixels(f, images, "occlusion", window=2, stride=2), lm, LABELS)
    assert rank_regions(occ)[0] == region and occ[region]["ratio"] > 5


@pytest.mark.parametrize("region", ["mouth", "eyes", "hair"])
def test_feature_ablation_ranks_the_read_region_first(world, region):
    _, _, images = world
    lm = fixed_label_map(len(images))
    attr = attribute_pixels(RegionReader(region), images, "feature_ablation", label_map=lm)
    regions = region_importance(attr, lm, LABELS)
    assert rank_regions(regions)[0] == region
    assert regions[region]["share"] > 0.99  # the other parts do not move the score at all


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_gradcam_runs_on_modules_and_is_skipped_with_a_reason_for_torchscript(world):
    _, _, images = world
    model = SmallCNN()
    cam = attribute_pixels(model, images, "gradcam")
    assert cam.shape == images.shape and cam.min() >= 0 and cam.sum() > 0
    scripted = torch.jit.trace(model, images[:2])
    with pytest.raises(MethodSkipped, match="TorchScript"):
        attribute_pixels(scripted, images, "gradcam")
    with pytest.raises(MethodSkipped, match="no nn.Module"):
        attribute_pixels(lambda x: scripted(x), images, "gradcam")
    # a callable exposing its module works, and so does a bound `decision_score` whose owner
    # holds the model in `.model` (the audit adapter's shape)
    wrapper = type("Wrapper", (), {"module": model, "__call__": lambda self, x: model(x)})()
    assert attribute_pixels(wrapper, images, "gradcam").sum() > 0
    adapter = type("Adapter", (), {"model": model, "differentiable": True, "decision_score": lambda self, x: self.model(x)})()
    assert torch.allclose(attribute_pixels(adapter.decision_score, images, "gradcam"), cam)
    adapter.model = scripted
    with pytest.raises(MethodSkipped, match="TorchScript"):
        attribute_pixels(adapter.decision_score, images, "gradcam")


# --- latent attribution ----------------------------------------------------------------


def test_w_subspaces_map_to_style_space_exactly(world):
    G, ws, _ = world
    sub = w_subspace(G, "wp", 3, space="W+", layers=[1, 2])
    v = sub.basis[0]
    moved = ws.clone()
    moved[:, 1:3] += v
    expected = G.pack_styles(G.styles(moved)) - G.pack_styles(G.styles(ws))
    mapped = to_style_space(G, sub, v[None])[0]
    assert torch.allclose(expected, mapped.expand_as(expected), atol=1e-5)
    basis_s, unit_s = subspace_in_s(G, sub)
    assert torch.allclose(basis_s @ basis_s.T, torch.eye(basis_s.shape[0]), atol=1e-5)


@pytest.mark.parametrize("planted,owner", [(PLANTED, "planted"), (("b4.conv1", 3), "early")])
def test_latent_attribution_ranks_the_planted_subspace_first(world, planted, owner):
    G, ws, _ = world
    f = channel_probe(G, ws, *planted)
    res = latent_attribution(f, G, ws, _bank(G), n_steps=16)
    assert res["ranking"][0] == owner, res["subspaces"]
    assert res["completeness_gap"] < 0.05  # IG's completeness holds on this path
    json.dumps(res, allow_nan=False)


# --- AttFind -----------------------------------------------------------------------------


def test_attfind_finds_the_planted_channel_and_it_suffices(world, tmp_path):
    G, ws, images = world
    f = channel_probe(G, ws, *PLANTED)
    threshold = float(f(images).median())
    res = run_attfind(f, G, ws, threshold=threshold, k=3, bank=_bank(G), label_map=fixed_label_map(16), labels=LABELS, out_dir=tmp_path)
    planted = f"{PLANTED[0]}:{PLANTED[1]}"
    for target, direction in (("positive", "max"), ("negative", "min")):
        cls = res["classes"][target]
        assert cls["top"][0]["channel"] == planted
        assert cls["top"][0]["direction"] == direction  # the probe reads +1 per unit of the channel
        assert cls["sufficiency_curve"][0] >= 0.7  # the top channel alone flips most faces
        assert cls["sufficiency"] >= 0.7
    chans = {c["channel"]: c for c in res["channels"]}
    assert chans[planted]["explained_by_bank"] and chans[planted]["best_match"]["subspace"] == "planted"
    assert chans[planted]["best_match"]["latent_overlap"] == pytest.approx(1.0)
    for u in res["unnamed_drivers"]:  # every unnamed driver comes with its walk strip
        assert not u["explained_by_bank"] and (tmp_path / u["walk_strip"]).is_file()
    json.dumps(res, allow_nan=False)


def test_attfind_on_a_constant_classifier_flips_nothing(world):
    G, ws, _ = world
    res = run_attfind(lambda im: im.mean((1, 2, 3)) * 0.0, G, ws, threshold=0.5, k=3)
    for cls in res["classes"].values():
        assert cls["top"] == [] and cls["sufficiency"] == 0.0
    assert res["unnamed_drivers"] == []


def test_partial_synthesis_gives_the_same_effects_and_screening_keeps_the_planted_channel(world):
    G, ws, _ = world
    f = channel_probe(G, ws, *PLANTED)
    a = style_effects(f, G, ws[:6], batch_size=20)
    b = style_effects(f, G, ws[:6], batch_size=64, partial=False)
    assert torch.allclose(a.effects, b.effects, atol=1e-5)
    s = style_effects(f, G, ws[:6], screen=4)
    assert int(s.evaluated.sum()) == 4
    names = [c.name for c in s.channels]
    k = names.index("b8.conv1:2")
    assert s.evaluated[k] and torch.allclose(s.effects[:, :, k], a.effects[:, :, k], atol=1e-5)


# --- localisation ------------------------------------------------------------------------


def test_wu_voting_assigns_concentrated_maps_and_refuses_split_ones():
    lm = fixed_label_map(8)
    mouth = (lm == LABELS.index("mouth")).float()
    eyes = (lm == LABELS.index("eyes")).float()
    noise = torch.rand(8, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.01
    assert vote_regions(mouth + noise, lm, LABELS)["region"] == "mouth"
    assert vote_regions(eyes + noise, lm, LABELS)["region"] == "eyes"
    split = torch.cat([mouth[:4], eyes[4:]]) + noise
    vote = vote_regions(split, lm, LABELS)
    assert vote["region"] is None and vote["vote_share"]["mouth"] == pytest.approx(0.5)


# --- agreement ---------------------------------------------------------------------------


def test_spearman_on_constructed_rankings():
    a = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    assert spearman(a, a)["rho"] == pytest.approx(1.0)
    assert spearman(a, {k: -v for k, v in a.items()})["rho"] == pytest.approx(-1.0)
    swapped = {"a": 4.0, "b": 2.0, "c": 3.0, "d": 1.0}  # one adjacent swap: 1 - 6*2/(4*15)
    assert spearman(a, swapped)["rho"] == pytest.approx(0.8)
    tied = {"a": 2.0, "b": 2.0, "c": 1.0, "d": 0.0}  # ranks 1.5 1.5 3 4 vs 1 2 3 4
    assert spearman(a, tied)["rho"] == pytest.approx(0.9486833, abs=1e-6)
    assert spearman(a, {"a": 1.0, "e": 2.0})["rho"] is None  # too few shared subspaces


def test_compare_reads_rankings_through_regions_and_explains_a_colour_shortcut(world):
    G, _, _ = world
    bank = tiny_bank(G, [
        s_subspace(G, "tone", [("b8.conv1", 0)], name="skin tone", tags=["skin", "colour"]),
        s_subspace(G, "smile", [("b8.conv1", 1)], name="smile", tags=["smile"]),
        s_subspace(G, "hair", [("b8.conv1", 3)], name="hair colour", tags=["region:hair"]),
        s_subspace(G, "glasses", [("b8.conv1", 4)], name="glasses", tags=["glasses"]),
    ])
    assert [subspace_region(s, LABELS) for s in bank.subspaces] == ["skin", "mouth", "hair", "glasses"]
    # bank criteria are JSON specs: their regions / landmark group decide first
    jaw = s_subspace(G, "face_width", [("b8.conv1", 0)], tags=["geometry", "face-shape"])
    jaw.criterion = '{"group":"jaw","kind":"landmarks","measure":"spread_x"}'
    area = s_subspace(G, "specs", [("b8.conv1", 0)], tags=["accessory"])
    area.criterion = '{"kind":"region_area","regions":["glasses"],"size":64}'
    assert subspace_region(jaw, LABELS) == "skin" and subspace_region(area, LABELS) == "glasses"
    walk = {"tone": 3.0, "smile": 2.0, "hair": 1.0, "glasses": 0.5}
    latent = {"tone": 0.9, "smile": 0.5, "hair": 0.6, "glasses": 0.1}  # one swap
    regions = {"feature_ablation": {
        "skin": {"abs_importance": 0.4, "area_share": 0.45}, "mouth": {"abs_importance": 0.3},
        "hair": {"abs_importance": 0.2}, "glasses": {"abs_importance": 0.01}}}
    res = compare(bank, walk, latent, regions, LABELS)
    assert res["walk_vs_latent"]["rho"] == pytest.approx(0.8)
    assert res["walk_vs_region"]["rho"] == pytest.approx(1.0)
    assert "skin tone first" in res["statement"] and "whole skin" in res["statement"]
    json.dumps(res, allow_nan=False)


# --- the audit's entry point ---------------------------------------------------------------


def test_parse_methods():
    assert parse_methods("none") == []
    assert parse_methods(None) == list(DEFAULT_METHODS)
    assert parse_methods("saliency, feature-ablation,attfind") == ["saliency", "feature_ablation", "attfind"]
    with pytest.raises(UserError, match="unknown baseline 'lime'"):
        parse_methods("saliency,lime")


def _driver(sid: str, slope: float) -> Driver:
    """A walk result with only the slope the agreement reads."""
    return Driver(subspace=sid, slope=slope, ci_low=slope, ci_high=slope, flip_rate=0.0, significant=False)


def test_run_baselines_writes_figures_and_its_record(world, tmp_path):
    G, ws, _ = world
    f = channel_probe(G, ws, *PLANTED)
    drivers = [_driver(sid, slope) for sid, slope in (("planted", 1.0), ("early", 0.1), ("w_dense", 0.4),
                                                      ("w_plus", 0.05))]
    out = run_baselines(f, G, ws[:8], _bank(G), FixedParser(), "saliency,feature_ablation,gradcam,latent,attfind",
                        tmp_path, drivers=drivers, threshold=0.0)
    json.loads(json.dumps(to_json(out), allow_nan=False))
    assert out.pixel["gradcam"].status == "skipped" and out.pixel["gradcam"].reason
    assert (tmp_path / out.pixel["saliency"].map).is_file()
    assert set(out.pixel["saliency"].quality) >= {"infidelity", "sensitivity_max"}
    assert out.latent.ranking[0] == "planted"
    assert out.agreement.walk_vs_latent.n == 4
    slope = out.agreement.walk_vs_latent_slope
    assert slope.n == 4 and -1.0 <= slope.rho <= 1.0
    assert run_baselines(f, G, ws, None, None, "none", tmp_path).methods == []


def test_a_non_differentiable_classifier_gets_the_perturbation_methods_only(world, tmp_path):
    G, ws, _ = world

    class OnnxLike:  # the audit adapter's shape: decision_score bound to an owner that says it has no gradients
        differentiable = False
        reader = RegionReader("eyes")

        def decision_score(self, images):
            with torch.no_grad():
                return self.reader(images)

    out = run_baselines(OnnxLike().decision_score, G, ws[:6], _bank(G), FixedParser(),
                        "saliency,occlusion,feature_ablation,latent", tmp_path)
    assert out.pixel["saliency"].status == "skipped" and "not differentiable" in out.pixel["saliency"].reason
    assert out.pixel["feature_ablation"].region_ranking[0] == "eyes"
    assert out.pixel["occlusion"].region_ranking[0] == "eyes"
    assert out.latent.status == "skipped"


def test_oracle_table_compares_baselines_with_known_truth(world):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from validate_baselines import markdown_table, oracle_rows

    G, ws, images = world
    f = channel_probe(G, ws, *PLANTED)
    res = run_baselines(f, G, ws[:12], _bank(G), FixedParser(), "feature_ablation,latent,attfind", None,
                        threshold=float(f(images).detach().median()))
    # the truth of this world: the probe reads the planted channel ("smile"), nothing else
    oracle = {"smile": 1.0, "shape": 0.1, "hair": 0.05, "eyes": 0.0}
    factor_subspace = {"smile": "planted", "shape": "early", "hair": "w_dense", "eyes": "w_plus"}
    factor_region = {"smile": "mouth", "shape": "skin", "hair": "hair", "eyes": "eyes"}
    (row,) = oracle_rows({"probe": res}, {"probe": oracle}, factor_subspace, factor_region)
    assert row["oracle_top_factor"] == "smile"
    assert row["latent_top"] == "planted" and row["latent_match"]
    assert row["attfind_top_channel"] == "b8.conv1:2" and row["attfind_top_match"] == "planted" and row["attfind_match"]
    assert row["attfind_sufficiency"] >= 0.7
    fa = res.pixel["feature_ablation"].regions
    assert row["region_top"] == max(fa, key=lambda r: fa[r]["abs_importance"])
    assert row["region_match"] == (row["region_top"] == "mouth")
    table = markdown_table([row])
    assert table.count("\n") == 2 and "b8.conv1:2" in table


# --- the real engine -----------------------------------------------------------------------


def test_everything_runs_on_the_stylegan2_engine(tmp_path):
    from iceaudit.stylegan2.networks import Generator

    torch.manual_seed(0)
    G = Generator(16, 0, 16, 16, 3, mapping_kwargs={"num_layers": 2},
                  synthesis_kwargs={"channel_base": 64, "channel_max": 8}).eval().requires_grad_(False)
    ws = G.mapping(torch.randn(6, 16))
    # W -> S through the affine maps is exact (styles are affine in ws)
    sub = w_subspace(G, "wp", 4, space="W+", layers=[2, 3])
    moved = ws.clone()
    moved[:, 2:4] += sub.basis[0]
    expected = G.pack_styles(G.styles(moved)) - G.pack_styles(G.styles(ws))
    assert torch.allclose(expected[0], to_style_space(G, sub, sub.basis)[0], atol=1e-4)
    # AttFind through partial synthesis == full re-synthesis
    model = SmallCNN()
    a = style_effects(model, G, ws[:3], batch_size=32)
    b = style_effects(model, G, ws[:3], batch_size=32, partial=False)
    assert torch.allclose(a.effects, b.effects, atol=1e-4)
    assert len(a.channels) == sum(sl.channels for sl in G.style_layers if sl.kind == "conv")
    bank = tiny_bank(G, [s_subspace(G, "s", [("b8.conv1", 1)], tags=["smile"]), sub, w_subspace(G, "w", 5, tags=["skin", "colour"])])
    out = run_baselines(model, G, ws, bank, FixedParser(), "all", tmp_path,
                        drivers=[_driver(i, v) for i, v in (("s", 1.0), ("wp", 0.5), ("w", 0.2))],
                        threshold=float(model(G.synthesis(ws)).detach().median()))
    json.dumps(to_json(out), allow_nan=False)
    assert all(v.status == "ok" for v in out.pixel.values())  # gradcam included: a module model
    assert out.attfind.n_channels == len(a.channels)


def test_every_baseline_method_reports_its_own_stage_with_counts(world, tmp_path):
    G, ws, _ = world
    f = channel_probe(G, ws, *PLANTED)
    stages: dict[str, list[int]] = {}
    totals: dict[str, int] = {}

    def stage(name: str, total: int):
        totals[name] = total
        stages[name] = []
        return lambda k=1: stages[name].append(k)

    run_baselines(f, G, ws[:6], _bank(G), FixedParser(), "saliency,feature_ablation,latent,attfind", tmp_path,
                  threshold=0.0, progress=stage)
    assert set(totals) == {"Captum saliency: faces", "Captum feature_ablation: faces", "latent IG: faces",
                           "AttFind: channel x face edits"}
    for name, steps in stages.items():
        assert steps and all(k > 0 for k in steps), name
        assert sum(steps) == totals[name], name  # each bar ends at its total
    assert totals["Captum saliency: faces"] == 6
    assert len(stages["AttFind: channel x face edits"]) > 1  # counted as it goes, not once at the end


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_gradcam_skip_names_the_factory_route_and_the_route_works(world, tmp_path):
    from iceaudit.audit.classifier import load_card, load_classifier, wrap_classifier

    _, _, images = world
    model = SmallCNN(seed=5)
    scripted = torch.jit.trace(model, images[:2])
    with pytest.raises(MethodSkipped) as why:
        attribute_pixels(scripted, images, "gradcam")
    reason = str(why.value)
    assert "--factory package.module:function" in reason and "`conv2`" in reason and "TorchScript" in reason  # the route, and its layer
    # the route: the same weights as a state dict + factory give a module classifier that Grad-CAM runs on
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    card = load_card(None, factory="baselines_world:SmallCNN", input_size=images.shape[-1])
    clf = load_classifier(tmp_path / "weights.pt", card)
    assert clf.kind == "module"
    cam = attribute_pixels(clf.decision_score, images, "gradcam")
    same = attribute_pixels(wrap_classifier(model, card).decision_score, images, "gradcam")  # same preprocessing
    assert cam.sum() > 0 and torch.allclose(cam, same, atol=1e-7)
