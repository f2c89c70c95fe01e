"""Criteria and their eyes: masks, label orders, FAN and BiSeNet adapters (random weights)."""
import pytest
import torch

from bank_helpers import BlobLandmarks, HalfParser
from iceaudit.criteria.base import Eyes, Memo
from iceaudit.criteria.bisenet import BiSeNetParser
from iceaudit.criteria.fan import FanLandmarks, soft_argmax
from iceaudit.criteria.landmarks import LandmarkSet, TextureOnGeometry
from iceaudit.criteria.pixels import HighFrequency, MaskedPixels, RegionArea, RegionColour
from iceaudit.criteria.regions import LABEL_ORDERS, label_order, region_mask, resolve_labels
from iceaudit.criteria.spec import Measured
from iceaudit.errors import UserError


def test_label_orders_resolve_by_name_never_by_position():
    assert len({len(v) for v in LABEL_ORDERS.values()}) == 1  # all 19 classes
    for order in LABEL_ORDERS.values():
        assert sorted(order) == sorted(LABEL_ORDERS["bisenet"])  # same vocabulary, other positions
    bis, pn, fc = label_order("bisenet"), label_order("facexlib-parsenet"), label_order("facer")
    assert bis[2] == "l_brow" and pn[2] == "nose" and fc[2] == "skin"
    for order in (bis, pn, fc):
        (nose,) = resolve_labels(["nose"], order)
        assert order[nose] == "nose"
        assert {order[i] for i in resolve_labels(["brows", "lips"], order)} == {"l_brow", "r_brow", "u_lip", "l_lip"}
    with pytest.raises(UserError, match="unknown parser label order"):
        label_order("celeba-whatever")
    with pytest.raises(UserError, match="not a label of this face parser"):
        resolve_labels(["beard"], bis)


def test_masks_dilate_erode_ring():
    logits = torch.zeros(1, 2, 9, 9)
    logits[0, 1, 3:6, 3:6] = 1
    m = region_mask(logits, [1])
    assert m.sum() == 9
    assert region_mask(logits, [1], dilate_px=1).sum() == 25
    assert region_mask(logits, [1], erode_px=1).sum() == 1
    ring = region_mask(logits, [1], ring_px=1)
    assert ring.sum() == 16 and (ring * m).sum() == 0


def test_pixel_criteria_split_inside_and_outside():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    act, sup = MaskedPixels(HalfParser(), ["skin"], size=16)(x)
    assert act.shape == (2, 3 * 16 * 8) and sup.shape == (2, 3 * 16 * 16)
    y = x.clone()
    y[:, :, :, 8:] += 0.5  # change only the right half ("hair")
    a2, s2 = MaskedPixels(HalfParser(), ["skin"], size=16)(y)
    assert torch.allclose(act, a2) and not torch.allclose(sup, s2)
    mean, sup = RegionColour(HalfParser(), ["skin"], size=16)(x)
    assert torch.allclose(mean, x[:, :, :, :8].mean(dim=(2, 3)), atol=1e-5)
    z = x.clone()
    z[:, :, :, :8] += 0.3  # uniform colour shift inside: act moves, sup does not
    m2, s2 = RegionColour(HalfParser(), ["skin"], size=16)(z)
    assert torch.allclose(m2, mean + 0.3, atol=1e-5) and torch.allclose(s2, sup, atol=1e-5)
    hf, low = HighFrequency(low=4, size=16)(x)
    flat = torch.full((1, 3, 16, 16), 0.2)
    assert HighFrequency(low=4, size=16)(flat)[0].abs().max() < 1e-5 and hf.abs().max() > 0.1
    area = RegionArea(HalfParser(), ["skin"], size=16)(x)[0]
    assert area.shape == (2, 1) and 0.2 < float(area[0]) < 0.8


def test_landmark_sets_and_centring_and_texture():
    model = BlobLandmarks(k=6)
    x = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    act, sup = LandmarkSet(model, [0, 1, 2])(x)
    assert act.shape == (2, 6) and sup.shape == (2, 6)
    cact, _ = LandmarkSet(model, [0, 1, 2], centred=True)(x)
    assert torch.allclose(cact.reshape(2, 3, 2).mean(1), torch.zeros(2, 2), atol=1e-6)
    (g,) = torch.autograd.grad(act.sum(), x)
    assert g.abs().sum() > 0  # differentiable
    with pytest.raises(UserError, match="out of range"):
        LandmarkSet(model, [7])
    tex = TextureOnGeometry(model, HalfParser(), ["skin"], size=16)
    with torch.no_grad():
        ctx = tex.prepare(x)
        a0, _ = tex.evaluate(x, ctx)
        a1, _ = tex.evaluate(x + 0.2, ctx)
    assert a0.shape == (2, 3 * 16 * 16)
    assert (a1 - a0).abs().max() > 0.1  # a colour change is seen
    # weights are zero outside the region
    assert a0.reshape(2, 3, 16, 16)[:, :, :, 12:].abs().max() == 0


def test_soft_argmax_finds_a_peak():
    h = torch.zeros(1, 2, 8, 8)
    h[0, 0, 2, 5] = 10.0
    h[0, 1, 7, 0] = 3.0
    p = soft_argmax(h)
    assert torch.allclose(p[0, 0], torch.tensor([5.5 / 8, 2.5 / 8]), atol=1e-4)
    assert torch.allclose(p[0, 1], torch.tensor([0.5 / 8, 7.5 / 8]), atol=1e-4)


def test_fan_adapter_random_weights_differentiable_and_in_its_box():
    fan = FanLandmarks.random(num_modules=1, size=64, box=(0.5, 0.5, 0.5))
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    pts = fan(x)
    assert pts.shape == (1, 68, 2)
    assert float(pts.detach().min()) >= 0.25 - 1e-5 and float(pts.detach().max()) <= 0.75 + 1e-5
    (g,) = torch.autograd.grad(pts.sum(), x)
    assert torch.isfinite(g).all()
    assert fan.groups["eyes"] == list(range(36, 48)) and fan.groups["jaw"] == list(range(17))


def test_fan_and_bisenet_load_real_architecture_checkpoints(tmp_path):
    # FAN-4 state dict saved like face-alignment's file, reloaded weights-only
    fan = FanLandmarks.random(num_modules=4)
    torch.save(fan.net.state_dict(), tmp_path / "2DFAN4-11f355bf06.pth.tar")
    again = FanLandmarks.from_file(tmp_path / "2DFAN4-11f355bf06.pth.tar")
    assert torch.equal(again.net.l3.weight, fan.net.l3.weight)
    # BiSeNet with the zllrunning key layout, in a "module." wrapper as some trainers save it
    net = BiSeNetParser.random(order="parsenet").net
    keys = set(net.state_dict())
    assert {"cp.resnet.layer1.0.conv1.weight", "cp.arm16.conv_atten.weight", "cp.conv_avg.conv.weight",
            "ffm.convblk.conv.weight", "ffm.conv1.weight", "conv_out.conv_out.weight",
            "conv_out16.conv.bn.running_mean", "conv_out32.conv_out.weight",
            "cp.resnet.layer2.0.downsample.0.weight"} <= keys
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, tmp_path / "p.pth")
    parser = BiSeNetParser.from_file(tmp_path / "p.pth", order="parsenet", size=32)
    assert parser.labels[2] == "nose"
    logits = parser(torch.rand(1, 3, 24, 24) * 2 - 1)
    assert logits.shape == (1, 19, 24, 24)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="not a 19-class BiSeNet"):
        BiSeNetParser.from_file(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        FanLandmarks.from_file(tmp_path / "junk.pth")


def test_memo_runs_an_eye_once_per_batch_and_measures():
    calls = []

    class Counting(HalfParser):
        def __call__(self, x):
            calls.append(1)
            return super().__call__(x)

    eyes = Eyes(parser=Memo(Counting()))
    assert eyes.parser.labels == HalfParser.labels
    m = Measured({"kind": "masked_pixels", "regions": ["skin"], "size": 16}, eyes)
    x = torch.rand(2, 3, 16, 16)
    m.prepare(x), m.prepare(x)
    assert len(calls) == 1
    v = m(x)
    assert v.shape == (2,)
    assert torch.allclose(v, x[:, :, :, :8].mean(dim=(1, 2, 3)), atol=1e-5)
    with pytest.raises(UserError, match="needs a region_colour"):
        Measured({"kind": "landmarks", "points": [0, 1], "measure": "red"}, Eyes(landmarks=BlobLandmarks()))


def test_memo_passes_forward_mode_tensors_through_uncached():
    """Forward-mode AD (exact JᵀJ in forward mode) hands the eyes dual tensors with no storage."""
    memo = Memo(lambda x: 2 * x)
    x, t = torch.rand(2, 3), torch.ones(2, 3)
    y, dy = torch.func.jvp(memo, (x,), (t,))
    assert torch.equal(y, 2 * x) and torch.equal(dy, 2 * t) and memo._cache == []


def test_facelab_eyes_are_resolved_by_name(monkeypatch):
    import sys
    import types

    import iceaudit.facelab as facelab_pkg
    from iceaudit.criteria.eyes import load_eyes

    lm = BlobLandmarks(k=3)
    lm.groups = {"jaw": [0, 1], "eyes": [2]}
    fake = types.SimpleNamespace(landmark_model=lambda: lm, face_parser=lambda: HalfParser())
    monkeypatch.setitem(sys.modules, "iceaudit.facelab.eyes", fake)
    monkeypatch.setattr(facelab_pkg, "eyes", fake, raising=False)
    eyes = load_eyes("facelab", "demo")
    assert eyes.landmarks is lm and eyes.parser.labels == ["background", "skin", "hair"]
    m = Measured({"kind": "landmarks", "group": "jaw", "measure": "mean_x"}, eyes)
    assert m(torch.zeros(1, 3, 16, 16)).shape == (1,)
    with pytest.raises(UserError, match="landmark group 'mouth'"):
        Measured({"kind": "landmarks", "group": "mouth"}, eyes)


def test_arch_measure_is_signed_by_the_smile():
    from iceaudit.criteria.spec import MEASURES
    from iceaudit.facelab.render import LANDMARK, render_seed

    idx = [LANDMARK["mouth_l"], LANDMARK["lip_top"], LANDMARK["mouth_r"]]
    arch = {}
    for smile in (-0.8, 0.0, 0.8):
        lms = render_seed(2, 0, resolution=64, smile=smile).landmarks[:, idx]  # [2, 3, 2]
        arch[smile] = MEASURES["arch"](None, lms.flatten(1), None)
    # the corners rise against the top lip as the smile grows (about 2 px at 64 per 0.8)
    assert (arch[0.8] > arch[0.0] + 1).all() and (arch[0.0] > arch[-0.8] + 1).all()


def test_contrast_measure_reads_texture_not_colour():
    from iceaudit.criteria.pixels import MaskContext
    from iceaudit.criteria.spec import MEASURES

    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    ctx = MaskContext(mask, (2, 6, 2, 6))
    flat = torch.full((2, 3, 4, 4), 0.3)
    lined = flat.clone()
    lined[1, :, ::2] += 0.2  # face 1 gets stripes: lines of +0.2 on every other row
    bright = flat + 0.5  # lighter, still flat
    c = MEASURES["contrast"](None, torch.cat([flat[:1], lined[1:], bright[:1]]).flatten(1), ctx)
    assert c[0] < 1e-5 and c[2] < 1e-5  # a flat region has no contrast, whatever its colour
    assert abs(float(c[1]) - 0.1) < 1e-4  # half the rows +0.2: std 0.1
    with pytest.raises(UserError):
        Measured({"kind": "region_colour", "regions": ["skin"], "measure": "contrast"}, Eyes(parser=HalfParser()))


def test_shading_reads_which_side_is_lit_not_the_colour():
    shading = Measured({"kind": "region_shading", "regions": ["skin"], "size": 16}, Eyes(parser=HalfParser()))
    cols = torch.arange(16.0).expand(16, 16)
    lit_left = (0.5 - 0.05 * cols).expand(2, 3, 16, 16).clone()  # the skin (left half) darkens to the right
    lit_right = lit_left.flip(-1)[:, :, :, 8:].repeat(1, 1, 1, 2)  # its mirror inside the skin
    v = shading(lit_left)
    assert (v > 0.15).all()  # skin columns 0-3 against 4-7: 0.05 * 4 brighter on the left
    assert torch.allclose(shading(lit_left + 0.3), v, atol=1e-5)  # a colour shift is not shading
    assert (shading(lit_right) < -0.15).all()
    flat = torch.full((1, 3, 16, 16), 0.2)
    flat[..., 8:] = 0.9  # the hair half differs: outside the region, no shading read
    assert abs(float(shading(flat))) < 1e-6
    with pytest.raises(UserError, match="region_colour, region_shading or masked_pixels"):
        Measured({"kind": "region_area", "regions": ["skin"], "measure": "luminance"}, Eyes(parser=HalfParser()))


def test_landmarks_on_one_axis_move_the_other_into_sup():
    model = BlobLandmarks(k=6)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    both, sup = LandmarkSet(model, [0, 1, 2], centred=True)(x)
    ys, sup_y = LandmarkSet(model, [0, 1, 2], centred=True, axis="y")(x)
    assert ys.shape == (2, 3) and sup_y.shape == (2, 6 + 3)
    assert torch.allclose(ys, both.reshape(2, 3, 2)[..., 1])
    assert torch.allclose(sup_y[:, 6:], both.reshape(2, 3, 2)[..., 0])  # the x of the chosen points is held
    eyes = Eyes(landmarks=model)
    spread = Measured({"kind": "landmarks", "indices": [0, 1, 2], "centred": True, "axis": "y", "measure": "spread"}, eyes)
    spread_y = Measured({"kind": "landmarks", "indices": [0, 1, 2], "centred": True, "measure": "spread_y"}, eyes)
    assert torch.allclose(spread(x), spread_y(x), atol=1e-6)
    with pytest.raises(UserError, match="one axis"):
        Measured({"kind": "landmarks", "indices": [0, 1], "axis": "y", "measure": "spread_x"}, eyes)
    with pytest.raises(UserError, match="axis must be x or y"):
        LandmarkSet(model, [0, 1], axis="z")
