"""FaceLab's procedural face renderer: factors -> image, part labels, landmarks.

Faces are aligned like FFHQ crops: at 128x128 the eye centres sit at
(48, 60) and (80, 60) and the mouth centre near (64, 88), whatever the
factors (yaw moves the outline, ears and nose against the fixed features).
Everything is drawn at 128x128 from implicit shapes with 1-pixel analytic
anti-aliasing, layer over layer, vectorised over the batch with torch; a
64x64 request is the 128 render area-averaged 2x2 (labels by majority of
the averaged part coverage). Small parts are drawn bold (thick brows and lid
lines, large dark irises, full lips, thick rims) so that they carry pixel
mass: a generator trained by regression otherwise blurs them away.

The render is a pure function of the factor vector (no hidden noise), so
`render(f)` is deterministic and a seed only enters through
`factors.sample_factors`.

Coordinates: (x, y) in pixels of the returned resolution, origin at the
top-left corner of the image, x to the right, y down; pixel (row i, col j)
covers [j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5). "Left" in
names means image-left (the subject's right).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from iceaudit.errors import UserError
from iceaudit.facelab.factors import FACTOR_NAMES, NUM_FACTORS, check_factors, sample_factors

# --- labels and landmarks (the contract other stages read) ---------------------------

LABEL_NAMES: tuple[str, ...] = (
    "background", "skin", "hair", "brows", "eyes", "nose", "mouth", "glasses", "beard",
)
LABEL = {name: i for i, name in enumerate(LABEL_NAMES)}

LANDMARK_NAMES: tuple[str, ...] = (
    # 0-8 jaw outline, image-left cheek -> chin -> image-right cheek
    "jaw_0", "jaw_1", "jaw_2", "jaw_3", "chin", "jaw_5", "jaw_6", "jaw_7", "jaw_8",
    # 9-11 left brow (outer, middle, inner), 12-14 right brow (inner, middle, outer)
    "brow_l_outer", "brow_l_mid", "brow_l_inner", "brow_r_inner", "brow_r_mid", "brow_r_outer",
    # 15-18 nose
    "nose_bridge", "nose_tip", "nostril_l", "nostril_r",
    # 19-22 left eye (outer corner, top lid, inner corner, bottom lid), 23-26 right eye
    "eye_l_outer", "eye_l_top", "eye_l_inner", "eye_l_bottom",
    "eye_r_inner", "eye_r_top", "eye_r_outer", "eye_r_bottom",
    # 27-32 mouth
    "mouth_l", "lip_top", "mouth_r", "lip_bottom", "lip_inner_top", "lip_inner_bottom",
    # 33-34 pupils
    "pupil_l", "pupil_r",
)
LANDMARK = {name: i for i, name in enumerate(LANDMARK_NAMES)}
NUM_LANDMARKS = len(LANDMARK_NAMES)
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 9)),
    "brows": tuple(range(9, 15)),
    "nose": tuple(range(15, 19)),
    "eyes": tuple(range(19, 27)) + (33, 34),
    "mouth": tuple(range(27, 33)),
}

BASE = 128  # the design resolution: every length below is in pixels at 128x128
EYE_L = (48.0, 60.0)
EYE_R = (80.0, 60.0)
MOUTH_Y = 88.0


@dataclass
class Render:
    """A batch of rendered faces with their ground truth.

    images    float32 [N, 3, R, R] in [-1, 1], RGB
    labels    uint8   [N, R, R], index into `LABEL_NAMES`
    landmarks float32 [N, 35, 2], (x, y) in pixels of this resolution (`LANDMARK_NAMES`)
    factors   float32 [N, 19], the factor vectors rendered (`FACTOR_NAMES`)
    """

    images: torch.Tensor
    labels: torch.Tensor
    landmarks: torch.Tensor
    factors: torch.Tensor

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def masks(self) -> torch.Tensor:
        """One-hot part masks, bool [N, 9, R, R] in `LABEL_NAMES` order."""
        return F.one_hot(self.labels.long(), len(LABEL_NAMES)).permute(0, 3, 1, 2).bool()

    def __len__(self) -> int:
        return int(self.images.shape[0])


# --- drawing primitives ---------------------------------------------------------------


class _Canvas:
    """RGB plus the visible coverage of each label, composited front to back is not
    needed: layers are painted back to front and every paint scales what is beneath."""

    def __init__(self, n: int, res: int):
        self.res = res
        self.scale = BASE / res  # design px per pixel
        self.coords = (torch.arange(res, dtype=torch.float32) + 0.5) * self.scale
        self.rgb = torch.zeros(n, 3, res, res)
        self.cover = torch.zeros(len(LABEL_NAMES), n, res, res)

    def window(self, y0: float, y1: float, x0: float, x1: float):
        """Slices and broadcastable grids (Y [1,h,1], X [1,1,w]) in design px."""
        s = self.res / BASE
        ys = slice(max(0, int(math.floor(y0 * s))), min(self.res, int(math.ceil(y1 * s))))
        xs = slice(max(0, int(math.floor(x0 * s))), min(self.res, int(math.ceil(x1 * s))))
        return ys, xs, self.coords[ys].view(1, -1, 1), self.coords[xs].view(1, 1, -1)

    def coverage(self, f: torch.Tensor) -> torch.Tensor:
        """Anti-aliased coverage of the region f < 0. Every shape below builds f as an
        approximate signed distance in design px (exact for strokes and rounded boxes,
        radius-scaled for ellipses), so a linear ramp one pixel wide is the box filter."""
        return (0.5 - f / self.scale).clamp_(0.0, 1.0)

    def paint(self, win, alpha: torch.Tensor, colour: torch.Tensor, label: int | None) -> None:
        """Alpha-composite `colour` ([N,3,1,1] or [N,3,h,w]) over the window; a label
        takes `alpha` of the coverage of everything beneath it."""
        ys, xs = win[0], win[1]
        a = alpha.unsqueeze(1)
        rgb = self.rgb[:, :, ys, xs]
        rgb.add_(a * (colour - rgb))
        if label is not None:
            cov = self.cover[:, :, ys, xs]  # label-major [L, N, h, w]: a view, updated in place
            cov.mul_(1.0 - alpha)
            cov[label].add_(alpha)

    def shade(self, win, amount: torch.Tensor, colour: torch.Tensor) -> None:
        """Tint towards `colour` by `amount` [N,h,w] without changing any label."""
        self.paint(win, amount, colour, None)


def _c(*rgb: float) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32)


def _lerp_ramp(stops: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear colour ramp: stops [K,3], t [N] in [0,1] -> [N,3]."""
    k = stops.shape[0] - 1
    pos = (t.clamp(0, 1) * k).clamp(max=k - 1e-6)
    i = pos.floor().long()
    w = (pos - i).unsqueeze(1)
    return stops[i] * (1 - w) + stops[i + 1] * w


SKIN_RAMP = torch.stack([_c(0.23, 0.13, 0.08), _c(0.42, 0.25, 0.15), _c(0.62, 0.42, 0.29),
                         _c(0.80, 0.60, 0.46), _c(0.93, 0.77, 0.65), _c(0.99, 0.89, 0.81)])
HAIR_RAMP = torch.stack([_c(0.06, 0.05, 0.05), _c(0.22, 0.13, 0.07), _c(0.45, 0.21, 0.09),
                         _c(0.66, 0.45, 0.22), _c(0.90, 0.76, 0.47)])
GREY = _c(0.80, 0.80, 0.80)
IRIS = _c(0.20, 0.12, 0.07)
SCLERA = _c(0.95, 0.93, 0.90)
INK = _c(0.07, 0.06, 0.06)
RIM = _c(0.06, 0.06, 0.08)
LENS = _c(0.80, 0.88, 0.96)
MOUTH_INSIDE = _c(0.22, 0.05, 0.06)
TEETH = _c(0.94, 0.92, 0.86)
LIP = _c(0.66, 0.20, 0.24)


def _hsv_to_rgb(h: torch.Tensor, s: float, v: torch.Tensor) -> torch.Tensor:
    """h, v [N] in [0,1] -> [N,3]."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    part = torch.minimum(k, 4 - k).clamp(0, 1)
    return v.unsqueeze(1) * (1 - s * part)


def _col(c: torch.Tensor) -> torch.Tensor:
    """[N,3] or [3] -> broadcastable [N,3,1,1]."""
    return c.view(-1, 3, 1, 1)


def _p(v: torch.Tensor) -> torch.Tensor:
    """[N] -> [N,1,1] for broadcasting against window grids."""
    return v.view(-1, 1, 1)


# --- the face -------------------------------------------------------------------------


def _geometry(f: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-face shape parameters in design px, all [N]."""
    g = {name: f[:, i] for i, name in enumerate(FACTOR_NAMES)}
    n = f.shape[0]
    one = torch.ones(n)
    yaw = g["yaw"]
    geo = dict(g)
    geo["cx"] = 64.0 - 4.0 * yaw  # outline centre: the head turns, the eyes stay aligned
    geo["fx"] = 1.2 * yaw  # shift of the inner features
    geo["fy"] = 64.0 * one  # widest line of the face
    geo["a"] = 31.0 + 10.0 * g["face_width"]
    geo["bu"] = 46.0 * one
    geo["bl"] = 43.0 * one
    geo["jaw_p"] = 2.0 + 2.2 * g["jaw"]
    geo["taper"] = 0.42 * (1.0 - g["jaw"]) + 0.05
    geo["ew"] = 6.0 + 3.5 * g["eye_size"]
    geo["eh_up"] = geo["ew"] * (0.10 + 0.55 * g["eye_openness"])
    geo["eh_lo"] = 0.55 * geo["eh_up"]
    geo["brow_gap"] = 10.0 + 7.0 * g["brow_height"]
    geo["brow_th"] = 2.5 + 4.5 * g["brow_thickness"]
    geo["nw"] = 5.0 + 6.0 * g["nose_width"]
    geo["tip_x"] = 64.0 + geo["fx"] + 3.0 * yaw
    geo["mx"] = 64.0 + geo["fx"] + 0.5 * yaw
    geo["mw"] = 12.0 + 2.0 * g["smile"].clamp(min=0)
    geo["gap"] = 7.0 * g["mouth_open"]
    geo["hl"] = g["hair_length"]
    return geo


def _jaw_halfwidth(geo, t: torch.Tensor) -> torch.Tensor:
    """Face half-width below the widest line at depth t in [0,1] (t=1: chin)."""
    p = _p(geo["jaw_p"]) if t.ndim == 3 else geo["jaw_p"]
    taper = _p(geo["taper"]) if t.ndim == 3 else geo["taper"]
    a = _p(geo["a"]) if t.ndim == 3 else geo["a"]
    return a * (1 - taper * t * t) * (1 - t.clamp(0, 1) ** p).clamp_min(0) ** (1 / p)


def _face_f(geo, Y, X, grow: float | torch.Tensor = 0.0):
    """Implicit face outline (<0 inside), in units of ~px near the border."""
    dx = (X - _p(geo["cx"])).abs()
    a = _p(geo["a"]) + grow
    up = ((dx / a) ** 2.2 + ((_p(geo["fy"]) - Y).clamp_min(0) / (_p(geo["bu"]) + grow)) ** 2.2) ** (1 / 2.2) - 1
    t = ((Y - _p(geo["fy"])) / (_p(geo["bl"]) + grow)).clamp_min(0)
    p = _p(geo["jaw_p"])
    a_t = a * (1 - _p(geo["taper"]) * t.clamp(max=1) ** 2)
    lo = ((dx / a_t) ** p + t ** p) ** (1 / p) - 1
    return torch.where(Y < _p(geo["fy"]), up, lo) * a


def _ellipse_f(Y, X, cy, cx, ry, rx):
    r = torch.minimum(torch.as_tensor(rx, dtype=torch.float32), torch.as_tensor(ry, dtype=torch.float32))
    return (torch.sqrt(((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2) - 1) * r


def _round_rect_f(Y, X, cy, cx, hy, hx, r):
    qx = (X - cx).abs() - hx + r
    qy = (Y - cy).abs() - hy + r
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    return outside + torch.minimum(torch.maximum(qx, qy), torch.zeros(())) - r


def _draw_face(cv: _Canvas, f: torch.Tensor) -> torch.Tensor:
    """Paint one batch onto the canvas; return landmarks [N, 35, 2] in design px."""
    n = f.shape[0]
    geo = _geometry(f)
    g = geo
    light = _p(g["light_dir"])
    cx, fy, a = _p(g["cx"]), _p(g["fy"]), _p(g["a"])
    hl = _p(g["hl"])

    skin = _lerp_ramp(SKIN_RAMP, g["skin_tone"])
    grey = (((g["age"] - 0.45) / 0.5).clamp(0, 1) ** 1.2).unsqueeze(1)
    hair = _lerp_ramp(HAIR_RAMP, g["hair_colour"]) * (1 - grey) + GREY * grey
    brow_col = hair * 0.72
    brow_col = torch.minimum(brow_col, skin * 0.7)  # brows always darker than the skin
    bg_v = 0.12 + 0.83 * g["bg_brightness"]
    bg = _hsv_to_rgb(g["bg_hue"], 0.45, bg_v)

    # background: flat colour with a soft vertical fall-off
    win = cv.window(0, BASE, 0, BASE)
    ys, xs, Y, X = win
    vert = 1.05 - 0.12 * (Y / BASE)
    cv.rgb[:] = (_col(bg) * vert.unsqueeze(0)).expand(n, 3, cv.res, cv.res)
    cv.cover[LABEL["background"]] = 1.0

    # hair behind the head: a cap that grows with volume, and long hair falling to the shoulders
    def hair_rgb_at(Y, X):
        shade = (0.88 + 0.22 * light * ((X - cx) / (a + 10)).clamp(-1, 1)
                 + 0.10 * torch.exp(-(((Y - 28) / 10) ** 2) - ((X - cx - 8 * light) / 14) ** 2))
        return _col(hair) * shade.unsqueeze(1)

    hair_end = 62.0 + 62.0 * hl
    half = a + 4.0 + 11.0 * hl

    def fall_f(Y, X):
        return torch.maximum(_round_rect_f(Y, X, (48.0 + hair_end) / 2, cx, (hair_end - 48.0) / 2, half, 10.0),
                             40.0 - Y)

    cap = _ellipse_f(Y, X, 52.0 - 2 * hl, cx, 42.0 + 6.0 * hl, a + 5.0 + 9.0 * hl)
    cv.paint(win, cv.coverage(torch.minimum(cap, fall_f(Y, X))), hair_rgb_at(Y, X), LABEL["hair"])

    # neck with a shadow under the jaw
    w_nk = cv.window(76, BASE, 16, 112)
    _, _, Yk, Xk = w_nk
    neck_f = torch.maximum((Xk - cx).abs() - 0.55 * a, 80.0 - Yk)
    neck_shade = 0.72 + 0.16 * ((Yk - fy - 40.0) / 20).clamp(0, 1) + 0.08 * light * ((Xk - cx) / a)
    cv.paint(w_nk, cv.coverage(neck_f), _col(skin) * neck_shade.unsqueeze(1), LABEL["skin"])

    # shirt with a V neck (counts as background in the labels)
    w_sh = cv.window(100, BASE, 0, BASE)
    _, _, Ys, Xs = w_sh
    shirt = _hsv_to_rgb((g["bg_hue"] + 0.45) % 1.0, 0.5, 0.25 + 0.25 * (1 - g["bg_brightness"]))
    dxs = (Xs - cx).abs()
    shirt_f = torch.maximum(112.0 + 12.0 * (dxs / 64) ** 2 - Ys, 0.55 * (Ys - 108.0) - dxs)
    cv.paint(w_sh, cv.coverage(shirt_f), _col(shirt), LABEL["background"])

    # ears, covered by long hair
    w_ear = cv.window(56, 82, 8, 120)
    _, _, Ye, Xe = w_ear
    for side in (-1.0, 1.0):
        ex_ = cx + side * (a - 1.0) - 1.5 * _p(g["yaw"])
        ear_f = _ellipse_f(Ye, Xe, 69.0, ex_, 9.5, 5.5)
        inner = cv.coverage(_ellipse_f(Ye, Xe, 69.5, ex_ + side * 0.5, 5.5, 2.5))
        ear_rgb = _col(skin) * (0.86 + 0.1 * side * light).unsqueeze(1) * (1 - 0.18 * inner.unsqueeze(1))
        cv.paint(w_ear, cv.coverage(ear_f), ear_rgb, LABEL["skin"])
    w_sd = cv.window(40, BASE, 0, BASE)
    _, _, Yd, Xd = w_sd
    side_f = torch.maximum(fall_f(Yd, Xd), torch.maximum(56.0 - Yd, (a - 3.0) - (Xd - cx).abs()))
    cv.paint(w_sd, cv.coverage(side_f) * (hl * 1.6 - 0.25).clamp(0, 1), hair_rgb_at(Yd, Xd), LABEL["hair"])

    # the face, shaded by the light direction
    w_fc = cv.window(12, 114, 14, 114)
    _, _, Yc, Xc = w_fc
    face_f = _face_f(geo, Yc, Xc)
    nx = ((Xc - cx) / a).clamp(-1.2, 1.2)
    ny = ((Yc - fy) / 46.0)
    shade = (0.93 + 0.17 * light * nx - 0.10 * nx ** 4 - 0.04 * ny.clamp_min(0)).clamp(0.55, 1.15)
    blush = torch.exp(-((((Xc - cx).abs() - 22.0) / 7.0) ** 2 + ((Yc - 76.0) / 6.0) ** 2)).unsqueeze(1)
    face_rgb = _col(skin) * shade.unsqueeze(1) * (1 - 0.06 * blush) + 0.06 * blush * _col(_c(0.8, 0.3, 0.3))
    cv.paint(w_fc, cv.coverage(face_f), face_rgb, LABEL["skin"])

    # age: forehead lines, smile folds, under-eye shadows (tints only, labels unchanged)
    age = _p(g["age"])
    ink = _col(skin * 0.55)
    w_fh = cv.window(28, 50, 40, 88)
    _, _, Yf, Xf = w_fh
    lines = torch.zeros(n, Yf.shape[1], Xf.shape[2])
    for y_line in (38.0, 43.0):
        yl = y_line + 0.012 * (Xf - _p(g["cx"])) ** 2 * 0.3
        lf = torch.maximum((Yf - yl).abs() - 0.55, (Xf - cx).abs() - 15.0)
        lines = torch.maximum(lines, cv.coverage(lf))
    cv.shade(w_fh, lines * (0.55 * age), ink)
    w_f = cv.window(74, 100, 36, 92)
    _, _, Yn, Xn = w_f
    folds = torch.zeros(n, Yn.shape[1], Xn.shape[2])
    for side in (-1.0, 1.0):
        # anchored to a mid-width nose and a neutral mouth so that nose width and smile
        # move only their own parts
        x0 = _p(g["tip_x"]) + side * 10.0
        x1 = _p(g["mx"]) + side * 14.5
        t = ((Yn - 78.0) / 15.0).clamp(0, 1)
        xl = x0 + (x1 - x0) * t + side * 2.0 * torch.sin(math.pi * t)
        ff = torch.maximum((Xn - xl).abs() - 0.6, (Yn - 85.5).abs() - 7.5)
        folds = torch.maximum(folds, cv.coverage(ff))
    cv.shade(w_f, folds * (0.5 * age), ink)

    # beard: sideburns, jaw, chin and moustache; density and reach grow with the factor
    beard = _p(g["beard"])
    w_b = cv.window(56, 120, 12, 116)
    _, _, Yb, Xb = w_b
    dxb = (Xb - cx).abs()
    face_b = _face_f(geo, Yb, Xb, grow=1.5 * beard)
    line = 86.0 - 16.0 * (dxb / a).clamp(0, 1.2) ** 1.5 + 4.0 * (1 - beard)
    region = torch.maximum(face_b, line - Yb)
    stache = _ellipse_f(Yb, Xb, MOUTH_Y - 4.5, _p(g["mx"]), 4.0, 13.5)
    beard_a = cv.coverage(torch.minimum(region, stache)) * (beard * 1.15).clamp(0, 1)
    beard_rgb = _col(hair * 0.85) * (0.92 + 0.1 * light * ((Xb - cx) / a)).unsqueeze(1)
    cv.paint(w_b, beard_a, beard_rgb, LABEL["beard"])

    # nose: bridge to tip, shaded on the side away from the light, bold nostrils
    w_n = cv.window(50, 88, 44, 84)
    _, _, Yn, Xn = w_n
    nw = _p(g["nw"])
    bridge_x = 64.0 + _p(g["fx"])
    tip_x = _p(g["tip_x"])
    t = ((Yn - 57.0) / 21.0).clamp(0, 1)
    axis = bridge_x + (tip_x - bridge_x) * t
    half_w = 1.8 + (nw - 1.8) * t ** 2.5
    upper = torch.maximum((Xn - axis).abs() - half_w, 57.0 - Yn)
    lower = _ellipse_f(Yn, Xn, 78.0 + 0 * nw, tip_x, 3.8 + 0 * nw, nw)
    nose_f = torch.where(Yn < 78.0, upper, lower)
    left = torch.sigmoid((axis - Xn - 1.0) / 1.2)
    right = torch.sigmoid((Xn - axis - 1.0) / 1.2)
    side_dark = 0.07 * (left + right) + 0.2 * (light.clamp_min(0) * left + (-light).clamp_min(0) * right)
    tip_hi = torch.exp(-(((Xn - tip_x + 2 * light) / 2.5) ** 2 + ((Yn - 76.0) / 2.5) ** 2))
    nose_rgb = _col(skin) * (0.95 - side_dark + 0.08 * tip_hi).unsqueeze(1)
    nose_cov = cv.coverage(nose_f)
    cv.paint(w_n, nose_cov, nose_rgb, LABEL["nose"])
    nostrils = torch.zeros_like(nose_cov)
    for side in (-1.0, 1.0):
        nf = _ellipse_f(Yn, Xn, 79.2, tip_x + side * 0.55 * nw, 1.5, 0.26 * nw + 0.4)
        nostrils = torch.maximum(nostrils, cv.coverage(nf))
    cv.shade(w_n, nostrils * 0.85, _col(skin * 0.3))
    ala = torch.maximum(nose_cov * (1 - cv.coverage(nose_f + 1.2)), torch.zeros(()))
    cv.shade(w_n, ala * (Yn > 74).float() * 0.45, _col(skin * 0.45))

    # mouth: lips around a curved line; corners rise with the smile, a gap opens with teeth
    w_m = cv.window(70, 108, 38, 90)
    _, _, Ym, Xm = w_m
    mx, mw, smile, gap = _p(g["mx"]), _p(g["mw"]), _p(g["smile"]), _p(g["gap"])
    u = ((Xm - mx) / mw).clamp(-1, 1)
    env = (1 - u * u).clamp_min(0).sqrt()
    yc = MOUTH_Y - 5.0 * smile * u * u + 1.6 * smile
    y_iu = yc - 0.35 * gap * env
    y_il = yc + 0.65 * gap * env
    y_top = y_iu - 3.4 * env ** 0.6 - 0.4
    y_bot = y_il + 4.4 * env ** 0.6 + 0.4
    lips_f = torch.maximum(torch.maximum(y_top - Ym, Ym - y_bot), (Xm - mx).abs() - mw)
    lip = skin * 0.5 + LIP * 0.5
    lip_rgb = _col(lip * 0.85) * (1 + 0.12 * (Ym > yc).float()).unsqueeze(1)
    cv.paint(w_m, cv.coverage(lips_f), lip_rgb, LABEL["mouth"])
    open_f = torch.maximum(torch.maximum(y_iu - Ym, Ym - y_il) - 0.75, (Xm - mx).abs() - mw + 0.5)
    teeth = ((Ym - y_iu) < 0.35 * gap * env).float() * ((gap - 2.0) / 2.0).clamp(0, 1)
    inside_rgb = _col(MOUTH_INSIDE) + teeth.unsqueeze(1) * (_col(TEETH) - _col(MOUTH_INSIDE))
    cv.paint(w_m, cv.coverage(open_f), inside_rgb, LABEL["mouth"])

    # eyes: almond opening, white, big dark iris and pupil, catch-light, thick upper lid
    w_e = cv.window(46, 70, 30, 98)
    _, _, Ye, Xe = w_e
    ew, eh_up, eh_lo = _p(g["ew"]), _p(g["eh_up"]), _p(g["eh_lo"])
    under = torch.zeros(n, Ye.shape[1], Xe.shape[2])
    for ex0 in (EYE_L[0], EYE_R[0]):
        ex = ex0 + _p(g["fx"])
        u = ((Xe - ex) / ew).clamp(-1, 1)
        prof = (1 - u * u).clamp_min(0)
        y_u = EYE_L[1] - eh_up * prof ** 0.8
        y_l = EYE_L[1] + eh_lo * prof
        eye_f = torch.maximum(torch.maximum(y_u - Ye, Ye - y_l), (Xe - ex).abs() - ew)
        eye_a = cv.coverage(eye_f)
        under = torch.maximum(under, cv.coverage(_ellipse_f(Ye, Xe, EYE_L[1] + 7.0, ex, 1.6, 8.0)))
        cv.paint(w_e, eye_a, _col(SCLERA) * (0.9 + 0.1 * ((Ye - y_u) / 3).clamp(0, 1)).unsqueeze(1),
                 LABEL["eyes"])
        ix, iy = ex + 0.8 * _p(g["yaw"]), EYE_L[1] + 0.4
        ri = 0.6 * ew
        iris_a = cv.coverage(_ellipse_f(Ye, Xe, iy, ix, ri, ri)) * eye_a
        cv.paint(w_e, iris_a, _col(IRIS), LABEL["eyes"])
        pupil_a = cv.coverage(_ellipse_f(Ye, Xe, iy, ix, 0.5 * ri, 0.5 * ri)) * eye_a
        cv.paint(w_e, pupil_a, _col(INK), LABEL["eyes"])
        glint = cv.coverage(_ellipse_f(Ye, Xe, iy - 0.35 * ri, ix - 0.3 * ri, 0.2 * ri + 0.3, 0.2 * ri + 0.3)) * eye_a
        cv.paint(w_e, glint * 0.9, _col(_c(1.0, 1.0, 1.0)), LABEL["eyes"])
        lid_f = torch.maximum((Ye - (y_u - 0.7)).abs() - 1.1 - 0.3 * prof, (Xe - ex).abs() - ew - 0.8)
        cv.paint(w_e, cv.coverage(lid_f), _col(INK), LABEL["eyes"])
    cv.shade(w_e, under * (0.35 * age), ink)

    # brows: thick arcs, tapering towards the temples
    w_br = cv.window(30, 58, 28, 100)
    _, _, Yr, Xr = w_br
    th = _p(g["brow_th"])
    by = EYE_L[1] - _p(g["brow_gap"])
    for ex0, side in ((EYE_L[0], -1.0), (EYE_R[0], 1.0)):
        bx = ex0 + _p(g["fx"]) + side * 1.0
        bw = 10.5 + 0 * th
        u = ((Xr - bx) / bw).clamp(-1, 1)
        yb = by - 2.6 * (1 - u * u) + 0.8 * side * u
        inner = 0.5 - 0.5 * side * u  # 1 at the inner end
        brow_f = torch.maximum((Yr - yb).abs() - th / 2 * (0.75 + 0.25 * inner), (Xr - bx).abs() - bw)
        cv.paint(w_br, cv.coverage(brow_f), _col(brow_col), LABEL["brows"])

    # hair in front: fringe above a hairline that dips at the temples
    w_h = cv.window(0, 62, 0, BASE)
    _, _, Yh, Xh = w_h
    dxh = (Xh - cx) / a
    hairline = 27.0 + 5.0 * hl + 3.0 * torch.sin(3.0 * dxh + 1.5 * _p(g["hair_colour"])) * 0 + 14.0 * dxh.abs() ** 2
    front_cap = _ellipse_f(Yh, Xh, 52.0 - 2 * hl, cx, 40.0 + 5.0 * hl, a + 2.5 + 6.0 * hl)
    fringe_f = torch.maximum(front_cap, Yh - hairline)
    cv.paint(w_h, cv.coverage(fringe_f), hair_rgb_at(Yh, Xh), LABEL["hair"])

    # glasses: lens tint then thick rims, bridge and temples, all scaled by the factor
    glasses = _p(g["glasses"])
    w_g = cv.window(42, 80, 8, 120)
    _, _, Yg, Xg = w_g
    rims, lens = [], []
    for ex0 in (EYE_L[0], EYE_R[0]):
        ex = ex0 + _p(g["fx"])
        rr = _round_rect_f(Yg, Xg, EYE_L[1] + 1.0, ex, 8.5 + 0 * ex, 12.0 + 0 * ex, 4.0)
        rims.append(rr.abs() - 1.3)
        lens.append(rr)
    lens_a = cv.coverage(torch.minimum(lens[0], lens[1]))
    cv.shade(w_g, lens_a * 0.22 * glasses, _col(LENS))
    bridge_x = 64.0 + _p(g["fx"])
    bridge = torch.maximum((Yg - (EYE_L[1] - 1.0)).abs() - 1.2, (Xg - bridge_x).abs() - 5.0)
    t_out = torch.maximum((Yg - (EYE_L[1] - 2.5)).abs() - 1.1,
                          torch.maximum((Xg - bridge_x).abs() - (cx - bridge_x).abs() * 0 - a - 2.0,
                                        28.0 - (Xg - bridge_x).abs()))
    frame = torch.minimum(torch.minimum(rims[0], rims[1]), torch.minimum(bridge, t_out))
    cv.paint(w_g, cv.coverage(frame) * glasses, _col(RIM), LABEL["glasses"])

    return _landmarks(geo)


def _landmarks(geo) -> torch.Tensor:
    """Landmarks [N, 35, 2] in design px, computed from the same shape parameters."""
    n = geo["cx"].shape[0]
    pts = torch.zeros(n, NUM_LANDMARKS, 2)
    cx, fy, bl = geo["cx"], geo["fy"], geo["bl"]

    def put(name, x, y):
        pts[:, LANDMARK[name], 0] = x
        pts[:, LANDMARK[name], 1] = y

    jaw_t = (0.0, 0.45, 0.72, 0.9)
    for k, t in enumerate(jaw_t):
        hw = _jaw_halfwidth(geo, torch.full((n,), t))
        put(f"jaw_{k}", cx - hw, fy + t * bl)
        put(f"jaw_{8 - k}", cx + hw, fy + t * bl)
    put("chin", cx, fy + bl)

    fx = geo["fx"]
    by = EYE_L[1] - geo["brow_gap"]
    for ex0, side, tag in ((EYE_L[0], -1.0, "l"), (EYE_R[0], 1.0, "r")):
        bx = ex0 + fx + side * 1.0
        bw = 10.5 * 0.8
        # u = +-0.8 along the arc: y = by - 2.6 (1 - u^2) + 0.8 side u
        put(f"brow_{tag}_outer", bx + side * bw, by - 2.6 * 0.36 + 0.8 * 0.8)
        put(f"brow_{tag}_mid", bx, by - 2.6)
        put(f"brow_{tag}_inner", bx - side * bw, by - 2.6 * 0.36 - 0.8 * 0.8)

    put("nose_bridge", 64.0 + fx, 58.0)
    put("nose_tip", geo["tip_x"], 78.0 + 2.0)
    put("nostril_l", geo["tip_x"] - 0.55 * geo["nw"], 79.2)
    put("nostril_r", geo["tip_x"] + 0.55 * geo["nw"], 79.2)

    for ex0, tag, outer_sign in ((EYE_L[0], "l", -1.0), (EYE_R[0], "r", 1.0)):
        ex = ex0 + fx
        put(f"eye_{tag}_outer", ex + outer_sign * geo["ew"], EYE_L[1])
        put(f"eye_{tag}_inner", ex - outer_sign * geo["ew"], EYE_L[1])
        put(f"eye_{tag}_top", ex, EYE_L[1] - geo["eh_up"])
        put(f"eye_{tag}_bottom", ex, EYE_L[1] + geo["eh_lo"])
        put(f"pupil_{tag}", ex + 0.8 * geo["yaw"], EYE_L[1] + 0.4)

    mx, mw, smile, gap = geo["mx"], geo["mw"], geo["smile"], geo["gap"]
    yc0 = MOUTH_Y + 1.6 * smile
    put("mouth_l", mx - mw, yc0 - 5.0 * smile)
    put("mouth_r", mx + mw, yc0 - 5.0 * smile)
    put("lip_top", mx, yc0 - 0.35 * gap - 3.8)
    put("lip_bottom", mx, yc0 + 0.65 * gap + 4.8)
    put("lip_inner_top", mx, yc0 - 0.35 * gap)
    put("lip_inner_bottom", mx, yc0 + 0.65 * gap)
    return pts


# --- public API ------------------------------------------------------------------------


def render(factors: torch.Tensor, resolution: int = 64, *, batch_size: int = 256) -> Render:
    """Render faces for a ``[N, 19]`` factor tensor (see `factors.FACTOR_NAMES`).

    resolution: 128 (native) or 64 (the 128 render averaged 2x2; labels by
    majority coverage). Images are float32 RGB in [-1, 1]. Pure function of
    `factors`; runs on the CPU in float32 regardless of the input's device.
    """
    if resolution not in (64, 128):
        raise UserError(f"FaceLab renders at 64 or 128 pixels, not {resolution!r}")
    fv = check_factors(factors)
    outs = [_render_batch(fv[i:i + batch_size], resolution) for i in range(0, fv.shape[0], batch_size)]
    return Render(
        images=torch.cat([o[0] for o in outs]),
        labels=torch.cat([o[1] for o in outs]),
        landmarks=torch.cat([o[2] for o in outs]),
        factors=fv,
    )


def _render_batch(f: torch.Tensor, resolution: int):
    cv = _Canvas(f.shape[0], BASE)
    lm = _draw_face(cv, f)
    rgb, cover = cv.rgb, cv.cover
    if resolution != BASE:
        k = BASE // resolution
        rgb = F.avg_pool2d(rgb, k)
        cover = F.avg_pool2d(cover, k)
        lm = lm / k
    images = (rgb.clamp(0, 1) * 2 - 1).contiguous()
    labels = cover.argmax(dim=0).to(torch.uint8)
    return images, labels, lm


def render_seed(n: int, seed: int, resolution: int = 64, **fixed: float) -> Render:
    """Render `n` faces drawn from the FaceLab prior with `seed` (see `sample_factors`)."""
    return render(sample_factors(n, seed, **fixed), resolution)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[N,3,R,R] in [-1,1] -> uint8 [N,R,R,3] for saving or display."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


__all__ = [
    "LABEL_NAMES", "LABEL", "LANDMARK_NAMES", "LANDMARK", "LANDMARK_GROUPS", "NUM_LANDMARKS",
    "Render", "render", "render_seed", "to_uint8", "NUM_FACTORS",
]
