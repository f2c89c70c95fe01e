"""FaceLab factors and the latent map phi: z -> factors."""
from __future__ import annotations

import pytest
import torch

from iceaudit.errors import UserError
from iceaudit.facelab import factors as fl
from iceaudit.facelab import latent


def test_factor_table_is_complete_and_documented():
    required = {"skin_tone", "face_width", "jaw", "eye_size", "eye_openness", "brow_height",
                "brow_thickness", "smile", "mouth_open", "nose_width", "hair_colour", "hair_length",
                "glasses", "beard", "age", "bg_hue", "bg_brightness", "light_dir", "yaw"}
    assert required <= set(fl.FACTOR_NAMES)
    for f in fl.FACTORS:
        assert f.low < f.high and f.meaning and f.low_means and f.high_means and f.parts
    assert fl.table().count("\n") == len(fl.FACTORS) + 1


def test_projection_has_orthonormal_rows_and_no_axis_is_a_factor():
    a = latent.projection()
    assert a.shape == (fl.NUM_FACTORS, latent.Z_DIM)
    assert torch.allclose(a @ a.T, torch.eye(fl.NUM_FACTORS), atol=1e-5)
    # every factor spreads over many latent coordinates: no coordinate carries > 5% of a row
    assert (a ** 2).max() < 0.05
    assert torch.equal(latent.projection(), a)


def test_phi_pushes_the_normal_onto_the_prior():
    f = latent.phi(latent.sample_z(4000, 0))
    g = fl.sample_factors(4000, 1)
    assert torch.all(f >= fl.LOW) and torch.all(f <= fl.HIGH)
    assert torch.allclose(f.mean(0), g.mean(0), atol=0.04)
    assert torch.allclose(f.std(0), g.std(0), atol=0.04)
    off = (f[:, fl.FACTOR_INDEX["glasses"]] == 0).float().mean()
    assert 0.5 < off < 0.7


def test_a_single_latent_coordinate_moves_many_factors():
    z = latent.sample_z(16, 3)
    z2 = z.clone()
    z2[:, 7] += 2.0
    moved = (latent.phi(z2) - latent.phi(z)).abs().mean(0)
    assert (moved > 1e-4).sum() >= 15


def test_z_for_factors_inverts_phi():
    f = fl.sample_factors(64, 9)
    z = latent.z_for_factors(f, seed=2)
    assert torch.allclose(latent.phi(z), f, atol=2e-4)
    assert 0.8 < float(z.std()) < 1.2


def test_latent_bad_input():
    with pytest.raises(UserError, match=r"\[N, 512\]"):
        latent.phi(torch.zeros(2, 3))
    with pytest.raises(UserError, match="seed must be an integer"):
        latent.sample_z(2, 0.5)


def test_projection_is_pinned():
    # The demo generator is trained against this exact map: a change here silently
    # invalidates it. If you change phi on purpose, retrain the generator and update the pin.
    assert latent.projection_digest() == "2020b8cfcef88a440544766e5971cf39dacdf64ad6108f2c0a51dc3a1e772d7f"
