"""Regression directions: the latent's mean change per SD of a criterion, other measures held."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from iceaudit.bank.build import bank_latents, build_bank
from iceaudit.bank.edit import walk_images
from iceaudit.bank.latent import LatentSpace
from iceaudit.bank.recipe import load_recipe
from iceaudit.bank.regression import conditional_direction, regression_direction
from iceaudit.criteria.base import Eyes
from iceaudit.criteria.eyes import load_eyes
from iceaudit.criteria.spec import Measured
from iceaudit.errors import UserError
from iceaudit.facelab.reader import FactorTruth
from iceaudit.stylegan2.loaders import load_generator


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def test_holding_a_correlated_measure_leaves_only_the_criterions_own_factor():
    g = torch.Generator().manual_seed(0)
    n, d = 4000, 40
    A = torch.randn(3, d, generator=g, dtype=torch.float64)  # how three independent factors enter the latent
    f = torch.randn(n, 3, generator=g, dtype=torch.float64)
    x = f @ A + 0.05 * torch.randn(n, d, generator=g, dtype=torch.float64)
    criterion = f[:, 0] + 0.8 * f[:, 1]  # the measure also reads factor 1
    free, r2_free = conditional_direction(x, criterion)
    held, r2 = conditional_direction(x, criterion, f[:, 1:2])
    assert r2_free == 0.0 and abs(r2 - 0.64 / 1.64) < 0.03  # factor 1's share of the criterion
    assert _cos(held, A[0]) > 0.99  # holding factor 1 leaves factor 0's direction
    assert _cos(free, A[0]) < 0.9 and _cos(free, A[0] + 0.8 * A[1]) > 0.99  # without it, both
    assert abs(_cos(held, A[2])) < 0.2


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(2)
    return load_generator("demo"), load_eyes("facelab", "facelab")


def test_a_regression_direction_moves_its_true_factor_most_and_stays_in_the_sampled_spread(world):
    G, eyes = world
    recipe = load_recipe("facelab")
    recipe.subspaces = [s for s in recipe.subspaces if s.id == "face_width"]
    assert recipe.subspaces[0].method == "regression"
    recipe.subspaces[0].options["pool"] = 400
    recipe.bank.update(calibration_faces=16, validation_faces=16, manifold_fit_faces=0)
    result = build_bank(G, recipe, eyes, truth=FactorTruth(), keep_failing=True)
    sub = result.bank["face_width"]
    rep = result.reports["face_width"]
    assert sub.method == "regression" and sub.basis.shape == (1, G.w_dim)
    assert rep["truth_lead"] == "face_width", rep["truth"]
    assert rep["own_effect"] > 0.5
    figures = rep["regression"]
    assert figures["faces"] == 400 and figures["held"] == []
    # one unit stays within a few SDs of how sampled latents spread along the direction
    assert sub.unit_norm / rep["calibration"]["sd_latent"] < 3


def test_a_held_measure_moves_less_along_the_conditional_direction(world):
    G, eyes = world
    recipe = {s.id: s for s in load_recipe("facelab").subspaces}
    width, opening = (Measured(recipe[k].criterion, eyes) for k in ("eye_shape", "eye_openness"))
    space = LatentSpace(G, "W")
    pool = bank_latents(G, 600, 7)
    free = regression_direction(G, space, width, {}, pool)
    held = regression_direction(G, space, width, {"eye_openness": opening}, pool)
    assert held.held == ("eye_openness",) and 0 < held.held_r2 < 0.95
    faces = bank_latents(G, 16, 8)

    def change_per_width_change(direction: torch.Tensor) -> float:
        from iceaudit.bank.format import Subspace

        sub = Subspace(id="t", name="t", description="", tags=[], space="W", layers=[], basis=direction[None],
                       unit="", unit_norm=1.0, step_range=(-2.0, 2.0), method="regression", criterion="")
        with torch.no_grad():
            frames = walk_images(G, sub, faces, [-0.5, 0.0, 0.5])
        ctx_w, ctx_o = width.prepare(frames[:, 1]), opening.prepare(frames[:, 1])
        dw = (width.value(frames[:, 2], ctx_w) - width.value(frames[:, 0], ctx_w)).mean() / width.value(frames[:, 1], ctx_w).std()
        do = (opening.value(frames[:, 2], ctx_o) - opening.value(frames[:, 0], ctx_o)).mean() / opening.value(frames[:, 1], ctx_o).std()
        return float(do / dw)

    assert abs(change_per_width_change(held.direction)) < 0.5 * abs(change_per_width_change(free.direction))


@pytest.mark.parametrize("options, message", [({"hold": ["no_such"]}, "no_such"), ({"hold": "eye_openness"}, "list"),
                                              ({"pool": "many"}, "pool"), ({"pool": 0}, "pool")])
def test_bad_regression_options_are_refused_before_discovery(options, message):
    recipe = load_recipe("facelab")
    recipe.subspaces = [replace(s, options={**s.options, **options}) if s.id == "eye_shape" else s
                        for s in recipe.subspaces]
    with pytest.raises(UserError, match=message):
        build_bank(None, recipe, Eyes())  # refused before the generator is touched
