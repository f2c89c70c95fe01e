"""StyleSpace analysis (Wu, Lischinski, Shechtman 2021): localized and attribute channels.

Channels are named by style layer and index; toRGB layers are left out, as in
the paper. Layer numbering of the paper's published channels ("6_501") counts
every style layer in synthesis order, toRGB included: `paper_channel` maps it.

Localized channels: for each face and conv style channel c, the gradient map is
mean_RGB |d pool32(image) / d s_c| (32×32). Parser regions are downsampled to
32×32 by majority. For a region covering a fraction p of the cells, the map is
thresholded at its (1 - p) quantile and the overlap score is |top ∩ region| /
|region|. The region with the best score wins that face; a channel belongs to
region r when r wins (strictly: ties give no win) in more than ``win`` (0.5) of the faces and leads the
runner-up region's win rate by more than ``lead`` (0.25). (The win-rate reading
of "leads the runner-up" is ours; the paper's figures are the thresholds.)

Attribute channels: normalise each style channel over sampled faces,
z = (s - μ) / σ; over a few positive examples, score = |mean z| / std z.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from iceaudit.bank.ice import JacobianMethod, jacobians
from iceaudit.bank.latent import LatentSpace
from iceaudit.criteria.base import Criterion, FaceParser
from iceaudit.criteria.regions import resolve_labels
from iceaudit.errors import UserError

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


def conv_layers(G: Generator) -> list[str]:
    return [l.name for l in G.style_layers if not l.name.endswith("torgb")]


def paper_channel(G: Generator, code: str) -> tuple[str, int]:
    """'6_501' -> ('b16.conv1', 501): layer index over all style layers (toRGB included)."""
    try:
        li, ci = (int(p) for p in code.split("_"))
    except ValueError:
        raise UserError(f"StyleSpace channel {code!r} is not of the form layer_channel, e.g. 6_501") from None
    layers = G.style_layers
    if not 0 <= li < len(layers):
        raise UserError(f"channel {code}: this generator has {len(layers)} style layers")
    layer = layers[li]
    if not 0 <= ci < layer.channels:
        raise UserError(f"channel {code}: layer {layer.name} has {layer.channels} channels")
    return layer.name, ci


class _Pooled(Criterion):
    name = "pool32"

    def __init__(self, size: int = 32):
        self.size = size

    def evaluate(self, images, ctx):
        x = F.adaptive_avg_pool2d(images, self.size)
        return x.flatten(1), x[:, :0].flatten(1)


def gradient_maps(G: Generator, ws1: torch.Tensor, layers: Sequence[str], *, size: int = 32, method: str = "fd",
                  progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """[D, size, size] gradient maps of one face for every channel of ``layers`` (packed order)."""
    space = LatentSpace(G, "S", list(layers))
    jac = jacobians(space, {"p": _Pooled(size)}, ws1, JacobianMethod(method), progress=progress)["p::act"]  # [3*s*s, D]
    return jac.reshape(3, size, size, -1).abs().mean(0).permute(2, 0, 1)


def region_grid(parser: FaceParser, images: torch.Tensor, regions: Mapping[str, Sequence[str]], size: int = 32) -> torch.Tensor:
    """Majority-downsampled region masks [N, R, size, size] (bool) for named region groups."""
    logits = parser(images)
    labels = list(parser.labels)
    hard = logits.argmax(1)
    onehot = F.one_hot(hard, len(labels)).permute(0, 3, 1, 2).float()
    frac = F.adaptive_avg_pool2d(onehot, size)  # label fractions per cell
    cell_label = frac.argmax(1)  # majority label of each cell
    out = []
    for names in regions.values():
        ids = resolve_labels(names, labels)
        out.append(torch.isin(cell_label, torch.tensor(ids)))
    return torch.stack(out, 1)


def overlap_scores(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """maps [D, s, s], masks [R, s, s] -> scores [D, R] (|top-p cells ∩ region| / |region|)."""
    d = maps.shape[0]
    flat = maps.reshape(d, -1)
    scores = torch.zeros(d, masks.shape[0])
    for r, m in enumerate(masks.reshape(masks.shape[0], -1)):
        area = int(m.sum())
        if area == 0:
            continue
        # threshold at the (1 - p) quantile, p = area / cells; ties at the threshold count as above it
        thr = flat.topk(area, dim=1).values[:, -1:]
        top = flat >= thr
        scores[:, r] = (top & m[None]).float().sum(1) / area
    return scores


@dataclass
class LocalizedChannels:
    layers: list[str]
    regions: list[str]
    win_rate: torch.Tensor  # [D, R]
    mean_score: torch.Tensor  # [D, R]
    assigned: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # region -> [(layer, ch)], best first


def localized_channels(
    G: Generator, ws: torch.Tensor, parser: FaceParser, regions: Mapping[str, Sequence[str]], *,
    layers: Sequence[str] | None = None, win: float = 0.5, lead: float = 0.25, method: str = "fd",
    progress: Callable[[float], None] | None = None,
) -> LocalizedChannels:
    layers = list(layers) if layers else conv_layers(G)
    names = list(regions)
    sizes = {l.name: l.channels for l in G.style_layers}
    wins, score_sum = None, None
    for n in range(ws.shape[0]):
        w1 = ws[n : n + 1]
        maps = gradient_maps(G, w1, layers, method=method, progress=progress)
        with torch.no_grad():
            masks = region_grid(parser, G.synthesis(w1, noise_mode="const"), regions)[0]
        sc = overlap_scores(maps, masks)
        onehot = F.one_hot(sc.argmax(1), len(names)).float()
        if len(names) > 1:  # a tie (e.g. a flat, global map) is no win
            top = sc.topk(2, dim=1).values
            onehot = onehot * (top[:, 0] - top[:, 1] > 1e-6).float()[:, None]
        wins = onehot if wins is None else wins + onehot
        score_sum = sc if score_sum is None else score_sum + sc
    rate, mean = wins / ws.shape[0], score_sum / ws.shape[0]
    top2 = rate.topk(min(2, len(names)), dim=1).values
    runner = top2[:, 1] if len(names) > 1 else torch.zeros(len(rate))
    ok = (top2[:, 0] > win) & (top2[:, 0] - runner > lead)
    coords = [(name, c) for name in layers for c in range(sizes[name])]
    assigned: dict[str, list[tuple[str, int]]] = {r: [] for r in names}
    best = rate.argmax(1)
    for i in ok.nonzero().flatten().tolist():
        assigned[names[int(best[i])]].append(coords[i])
    for r_i, r in enumerate(names):
        assigned[r].sort(key=lambda lc: -float(mean[coords.index(lc), r_i]))
    return LocalizedChannels(layers, names, rate, mean, assigned)


@dataclass
class StyleStats:
    layers: list[str]
    mean: torch.Tensor  # [D]
    std: torch.Tensor  # [D]


def style_stats(G: Generator, ws: torch.Tensor, layers: Sequence[str] | None = None) -> StyleStats:
    layers = list(layers) if layers else conv_layers(G)
    with torch.no_grad():
        x = LatentSpace(G, "S", layers).encode(ws)
    return StyleStats(LatentSpace(G, "S", layers).layers, x.mean(0), x.std(0).clamp_min(1e-8))


def attribute_channels(G: Generator, positives_ws: torch.Tensor, stats: StyleStats, top: int = 10) -> list[tuple[str, int, float, float]]:
    """Channels most consistently shifted in the positive examples: (layer, ch, score, mean z), best first."""
    space = LatentSpace(G, "S", stats.layers)
    with torch.no_grad():
        z = (space.encode(positives_ws) - stats.mean) / stats.std
    mean, sd = z.mean(0), z.std(0).clamp_min(1e-6)
    score = mean.abs() / sd
    coords = [(name, c) for name, size in zip(space.layers, space._sizes) for c in range(size)]
    idx = score.argsort(descending=True)[:top]
    return [(*coords[i], float(score[i]), float(mean[i])) for i in idx.tolist()]


def channel_basis(G: Generator, channels: Sequence[tuple[str, int]], signs: Sequence[float] | None = None) -> tuple[list[str], torch.Tensor]:
    """S layers and a [k, D] basis of one-hot rows for the given channels (row 0 first channel).

    With ``signs`` a single combined row (signed, normalised) is returned instead."""
    layers = LatentSpace(G, "S", sorted({l for l, _ in channels}, key=[x.name for x in G.style_layers].index)).layers
    sizes = {l.name: l.channels for l in G.style_layers}
    offsets, o = {}, 0
    for name in layers:
        offsets[name] = o
        o += sizes[name]
    rows = torch.zeros(len(channels), o)
    for i, (name, c) in enumerate(channels):
        rows[i, offsets[name] + c] = 1.0
    if signs is not None:
        v = (torch.tensor(list(signs), dtype=torch.float32)[:, None] * rows).sum(0)
        rows = (v / v.norm())[None]
    return layers, rows
