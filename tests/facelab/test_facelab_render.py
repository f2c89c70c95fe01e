"""FaceLab renderer: determinism, ground-truth consistency, locality of each factor."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from iceaudit.errors import UserError
from iceaudit.facelab import factors as fl
from iceaudit.facelab.render import (LABEL, LABEL_NAMES, LANDMARK, LANDMARK_GROUPS, LANDMARK_NAMES,
                                     NUM_LANDMARKS, render, render_seed)


@pytest.fixture(scope="module")
def faces128():
    return render_seed(16, 11, resolution=128)


def _near_label(r, idx, label, radius):
    """For each face: is the landmark `idx` within `radius` px of a pixel labelled `label`?"""
    mask = (r.labels == LABEL[label]).float()[:, None]
    k = 2 * radius + 1
    grown = F.max_pool2d(mask, k, 1, radius)[:, 0] > 0
    xy = r.landmarks[:, idx].floor().long().clamp(0, r.resolution - 1)
    return grown[torch.arange(len(r)), xy[:, 1], xy[:, 0]]


def test_render_is_deterministic_per_seed():
    a, b, c = render_seed(4, 3), render_seed(4, 3), render_seed(4, 4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.landmarks, b.landmarks) and torch.equal(a.factors, b.factors)
    assert not torch.equal(a.images, c.images)


def test_outputs_have_documented_shapes_and_ranges(faces128):
    r = faces128
    assert r.images.shape == (16, 3, 128, 128) and r.images.dtype == torch.float32
    assert r.images.min() >= -1 and r.images.max() <= 1
    assert r.labels.shape == (16, 128, 128) and r.labels.dtype == torch.uint8
    assert int(r.labels.max()) < len(LABEL_NAMES)
    assert r.landmarks.shape == (16, NUM_LANDMARKS, 2) and NUM_LANDMARKS >= 20
    assert len(LANDMARK_NAMES) == NUM_LANDMARKS
    assert sorted(i for g in LANDMARK_GROUPS.values() for i in g) == list(range(NUM_LANDMARKS))
    assert r.masks().shape == (16, len(LABEL_NAMES), 128, 128)
    assert bool(r.masks().sum(1).eq(1).all())


def test_64_is_the_128_render_downsampled(faces128):
    r64 = render(faces128.factors, 64)
    assert torch.allclose(r64.images, F.avg_pool2d(faces128.images, 2), atol=1e-5)
    assert torch.allclose(r64.landmarks * 2, faces128.landmarks)
    # labels agree with the 128 labels on most pixels (they differ only at part borders)
    agree = (r64.labels == faces128.labels[:, ::2, ::2]).float().mean()
    assert agree > 0.9


def test_eyes_are_aligned_like_ffhq(faces128):
    lm = faces128.landmarks
    for tag, x in (("l", 48.0), ("r", 80.0)):
        eye = lm[:, [LANDMARK[f"eye_{tag}_outer"], LANDMARK[f"eye_{tag}_inner"]]].mean(1)
        assert torch.allclose(eye[:, 1], torch.full((16,), 60.0))
        assert (eye[:, 0] - x).abs().max() <= 1.3  # only the small yaw shift


@pytest.mark.parametrize("group,label,radius", [
    ("eyes", "eyes", 1), ("brows", "brows", 1), ("mouth", "mouth", 1)])
def test_part_landmarks_lie_on_their_masks(faces128, group, label, radius):
    r = render(fl.from_dict({"glasses": 0.0}, base=faces128.factors), 128)
    for idx in LANDMARK_GROUPS[group]:
        ok = _near_label(r, idx, label, radius)
        assert ok.all(), f"{LANDMARK_NAMES[idx]} off the {label} mask in faces {(~ok).nonzero().flatten().tolist()}"


def test_nose_landmarks_lie_on_the_nose_mask(faces128):
    r = render(fl.from_dict({"glasses": 0.0}, base=faces128.factors), 128)
    for name in ("nose_bridge", "nose_tip", "nostril_l", "nostril_r"):
        assert _near_label(r, LANDMARK[name], "nose", 1).all(), name


def test_jaw_landmarks_lie_on_the_face_outline(faces128):
    r = render(fl.from_dict({"beard": 0.0, "glasses": 0.0, "hair_length": 0.0}, base=faces128.factors), 128)
    n = torch.arange(len(r))
    for idx in LANDMARK_GROUPS["jaw"]:
        assert _near_label(r, idx, "skin", 1).all(), LANDMARK_NAMES[idx]
    # below the ears and above the neck the outline is bare: 3 px inward is skin, 3 px out is not
    for idx, out_sign in ((1, -1.0), (7, 1.0)):
        x, y = r.landmarks[:, idx, 0], r.landmarks[:, idx, 1].long()
        outside = r.labels[n, y, (x + 3 * out_sign).long()]
        inside = r.labels[n, y, (x - 3 * out_sign).long()]
        assert (outside != LABEL["skin"]).all() and (inside == LABEL["skin"]).all()


@pytest.mark.parametrize("name", fl.FACTOR_NAMES)
def test_each_factor_moves_only_its_declared_parts(name):
    """Pixels that change when one factor moves carry (before or after, within 1 px) one of
    the labels `Factor.parts` declares; the factor does move pixels."""
    f = fl.factor(name)
    base = fl.sample_factors(6, 5)
    i = fl.FACTOR_INDEX[name]
    moved = base.clone()
    step = 0.3 * f.span
    moved[:, i] = torch.where(base[:, i] + step <= f.high, base[:, i] + step, base[:, i] - step)
    if name in ("glasses", "beard"):  # gated factors are mostly off: move them from 0 to on
        moved[:, i] = 0.9
        base[:, i] = 0.0
    r0, r1 = render(base, 128), render(moved, 128)
    diff = (r1.images - r0.images).abs().amax(1) > 0.06
    allowed = torch.zeros_like(diff)
    for p in f.parts:
        allowed |= (r0.labels == LABEL[p]) | (r1.labels == LABEL[p])
    allowed = F.max_pool2d(allowed.float()[:, None], 3, 1, 1)[:, 0].bool()
    assert diff.sum() > 50
    assert (diff & ~allowed).sum() <= 0.005 * diff.sum()


def test_smile_changes_only_the_mouth_region():
    base = fl.sample_factors(8, 2, smile=-0.6, age=0.0)
    r0 = render(base, 128)
    r1 = render(fl.from_dict({"smile": 0.8}, base=base), 128)
    diff = (r1.images - r0.images).abs().amax(1) > 1e-4
    mouth = (r0.labels == LABEL["mouth"]) | (r1.labels == LABEL["mouth"])
    mouth = F.max_pool2d(mouth.float()[:, None], 3, 1, 1)[:, 0].bool()
    assert diff.sum() > 100 and not (diff & ~mouth).any()
    # the corners rise: corner landmarks move up (smaller y)
    for name in ("mouth_l", "mouth_r"):
        assert (r1.landmarks[:, LANDMARK[name], 1] < r0.landmarks[:, LANDMARK[name], 1] - 3).all()


def test_skin_tone_recolours_skin_and_leaves_background():
    base = fl.sample_factors(8, 7, skin_tone=0.1)
    r0, r1 = render(base, 64), render(fl.from_dict({"skin_tone": 0.9}, base=base), 64)
    skin = (r0.labels == LABEL["skin"])[:, None].expand_as(r0.images)
    bg = (r0.labels == LABEL["background"]).float()[:, None]
    bg = (-F.max_pool2d(-bg, 3, 1, 1)).bool().expand_as(r0.images)  # eroded: no anti-aliased border
    assert (r1.images - r0.images)[skin].mean() > 0.5  # much lighter
    assert torch.equal(r0.labels, r1.labels)
    assert torch.allclose(r0.images[bg], r1.images[bg])


def test_glasses_add_glasses_pixels():
    base = fl.sample_factors(8, 1, glasses=0.0)
    r0, r1 = render(base, 64), render(fl.from_dict({"glasses": 1.0}, base=base), 64)
    assert (r0.labels == LABEL["glasses"]).sum() == 0
    per_face = (r1.labels == LABEL["glasses"]).flatten(1).sum(1)
    assert (per_face > 60).all()


def test_beard_adds_beard_pixels_and_open_mouth_adds_mouth_pixels():
    base = fl.sample_factors(8, 1, beard=0.0, mouth_open=0.0)
    r0 = render(base, 64)
    r1 = render(fl.from_dict({"beard": 1.0, "mouth_open": 1.0}, base=base), 64)
    count = lambda r, p: (r.labels == LABEL[p]).flatten(1).sum(1)  # noqa: E731
    assert (count(r0, "beard") == 0).all() and (count(r1, "beard") > 150).all()
    assert (count(r1, "mouth") > count(r0, "mouth") + 10).all()


def test_render_rejects_bad_input():
    with pytest.raises(UserError, match="unknown FaceLab factor 'smiles'"):
        fl.from_dict({"smiles": 0.5})
    with pytest.raises(UserError, match="outside its range"):
        fl.from_dict({"smile": 1.5})
    bad = fl.defaults(2)
    bad[1, fl.FACTOR_INDEX["eye_size"]] = -0.5
    with pytest.raises(UserError, match="'eye_size'"):
        render(bad)
    with pytest.raises(UserError, match="shape"):
        render(torch.zeros(3, 5))
    with pytest.raises(UserError, match="finite"):
        render(torch.full((1, fl.NUM_FACTORS), float("nan")))
    with pytest.raises(UserError, match="seed must be an integer"):
        render_seed(2, 1.5)
    with pytest.raises(UserError, match="seed must be an integer"):
        fl.sample_factors(2, "7")
    with pytest.raises(UserError, match="64 or 128"):
        render(fl.defaults(1), 100)
