"""Discovery methods on a generator with planted semantics (PatternGenerator):
each method must find the channel / dimension that was planted."""
import torch

from bank_helpers import HalfParser, PatternGenerator
from iceaudit.bank import correlation, stylespace
from iceaudit.bank.build import bank_latents
from iceaudit.bank.calibrate import calibrate, orient
from iceaudit.bank.edit import apply_edit, start_layer, walk_images
from iceaudit.bank.format import Subspace
from iceaudit.bank.ice import compute_jtj, ice_subspace
from iceaudit.bank.latent import LatentSpace
from iceaudit.bank.pca import principal_directions
from iceaudit.criteria.base import Eyes
from iceaudit.criteria.pixels import RegionColour
from iceaudit.criteria.spec import Measured

REGIONS = {"skin": ["skin"], "hair": ["hair"], "background": ["background"]}


def _left_luminance(images):
    return images[:, :, :, :8].mean(dim=(1, 2, 3))


def test_ice_finds_the_planted_left_half_channel():
    G = PatternGenerator()
    ws = bank_latents(G, 3, seed=0)
    space = LatentSpace(G, "S")
    crit = {"c": RegionColour(HalfParser(), ["skin"], size=16)}
    A = compute_jtj(space, crit, ws)
    res = ice_subspace(A["c::act"], [A["c::sup"]], r=1e-3)
    e0 = torch.zeros(space.dim)
    e0[0] = 1  # b4.conv1 channel 0 paints only the left half
    assert res.basis.shape[0] >= 1
    assert abs(float(res.basis[0] @ e0)) > 0.9
    unsuppressed = ice_subspace(A["c::act"], [])
    assert abs(float(unsuppressed.basis[0] @ e0)) < abs(float(res.basis[0] @ e0))


def test_stylespace_voting_assigns_planted_channels_to_their_regions():
    G = PatternGenerator()
    ws = bank_latents(G, 4, seed=0)
    loc = stylespace.localized_channels(G, ws, HalfParser(), REGIONS, method="exact")
    assert loc.layers == ["b4.conv1"]  # toRGB layers are left out
    assert loc.assigned["skin"] == [("b4.conv1", 0)]
    assert loc.assigned["hair"] == [("b4.conv1", 1)]
    assert loc.assigned["background"] == []
    # with an impossible lead nothing is assigned
    strict = stylespace.localized_channels(G, ws, HalfParser(), REGIONS, lead=1.0, method="exact")
    assert all(not v for v in strict.assigned.values())


def test_attribute_channels_from_a_few_positives():
    G = PatternGenerator()
    pool = bank_latents(G, 200, seed=1)
    stats = stylespace.style_stats(G, bank_latents(G, 200, seed=2), layers=["b4.conv1", "b4.torgb"])
    s3 = G.styles(pool)["b4.conv1"][:, 3]
    positives = pool[s3.argsort(descending=True)[:10]]
    top = stylespace.attribute_channels(G, positives, stats, top=3)
    assert top[0][:2] == ("b4.conv1", 3) and top[0][3] > 0


def test_paper_channel_numbering_counts_torgb_layers():
    G = PatternGenerator()
    assert stylespace.paper_channel(G, "1_2") == ("b4.torgb", 2)
    layers, basis = stylespace.channel_basis(G, [("b4.torgb", 2), ("b4.conv1", 1)])
    assert layers == ["b4.conv1", "b4.torgb"] and basis.shape == (2, 8)
    assert basis[0, 6] == 1 and basis[1, 1] == 1


def test_correlation_ranks_planted_dims_first_and_greedy_controls():
    G = PatternGenerator()
    ws = bank_latents(G, 8, seed=0)
    s_space = LatentSpace(G, "S", ["b4.conv1"])
    eff = correlation.dimension_effects(G, _left_luminance, ws, s_space)
    assert eff.ranking()[0] == 0
    w_space = LatentSpace(G, "W")
    eff_w = correlation.dimension_effects(G, _left_luminance, ws, w_space)
    assert eff_w.ranking()[0] == 0  # w_0 drives conv channel 0 most
    target = 0.5 * float(eff.mean[0].abs())
    cs = correlation.controlling_greedy(G, _left_luminance, ws, eff, target=target, max_size=3)
    assert cs.dims[0] == 0 and cs.success[0] >= 0.9
    assert correlation.joint_success_rate(G, _left_luminance, ws, eff, [1], target) < 0.5  # right half only
    v = correlation.direction_of(eff, cs.dims)
    assert abs(float(v[0])) > 0.9


def test_calibration_unit_is_one_sd_of_the_measure_and_edit_api():
    G = PatternGenerator()
    eyes = Eyes(parser=HalfParser())
    measured = Measured({"kind": "region_colour", "regions": ["skin"], "size": 16}, eyes)
    basis = torch.zeros(2, 8)
    basis[0, 2], basis[1, 0] = 1, -1  # row 0 is a weak direction; row 1 the strong one, negated
    sub = Subspace("t", "t", "t", [], "S", ["b4.conv1", "b4.torgb"], basis, "", 1.0, (-2, 2), "ice", "")
    ws = bank_latents(G, 16, seed=3)
    sub = orient(G, sub, measured, ws)
    assert abs(float(sub.basis[0, 0])) > 0.9  # the strongest direction inside the span leads
    sub, cal = calibrate(G, sub, measured, ws)
    assert float(sub.basis[0, 0]) > 0.9  # + increases the measure
    vals = measured(walk_images(G, sub, ws, [0.0, 1.0]).flatten(0, 1)).reshape(-1, 2)
    per_unit = float((vals[:, 1] - vals[:, 0]).mean())
    assert abs(per_unit - cal.sd_measure) < 0.05 * cal.sd_measure  # one unit = one SD (linear world)
    assert start_layer(G, sub) == "b4.conv1"
    styles = apply_edit(G, sub, ws[:2], torch.tensor([0.0, 1.0]))
    base = G.styles(ws[:2])
    assert torch.allclose(styles["b4.conv1"][0], base["b4.conv1"][0])
    assert torch.allclose(styles["b4.conv1"][1] - base["b4.conv1"][1], sub.unit_norm * sub.basis[0, :4], atol=1e-5)


def test_w_plus_edit_moves_only_its_ws_range():
    G = PatternGenerator()
    ws = bank_latents(G, 2, seed=0)
    sub = Subspace("w", "w", "w", [], "W+", [1, 1], torch.eye(4)[:1], "", 2.0, (-1, 1), "pca", "")
    assert start_layer(G, sub) == "b4.torgb"
    st = apply_edit(G, sub, ws, 1.0)
    base = G.styles(ws)
    assert torch.equal(st["b4.conv1"], base["b4.conv1"]) and not torch.equal(st["b4.torgb"], base["b4.torgb"])


def test_pca_directions_are_orthonormal_and_ordered():
    G = PatternGenerator()
    comps, var = principal_directions(G, n=500, k=3)
    assert torch.allclose(comps @ comps.T, torch.eye(3), atol=1e-5)
    assert bool((var[:-1] >= var[1:]).all())
