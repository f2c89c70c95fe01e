"""Which face region a style channel acts on (Wu, Lischinski & Shechtman 2021, voting).

Per face and channel, a gradient map: how much each pixel of the image,
average-pooled to ``size`` x ``size``, moves per unit of the channel (mean
|change| over RGB). We take it by a central finite difference of
``step`` x (the channel's SD over the sampled faces) through partial
synthesis, which needs no backward pass per output pixel.

Voting: the parser's label map is pooled to the same size by majority. For
each region covering a fraction ``p`` of the face, the gradient map is cut at
its ``1 - p`` quantile, and the region scores ``|top pixels within region| /
|region|``. The best-scoring region gets the face's vote. The channel is
assigned to a region that wins more than ``min_share`` of the faces and
leads the runner-up by more than ``min_lead``; otherwise it is "spread".
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F

from iceaudit.audit.style_space import StyleChannel

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


def pool_labels(label_map: torch.Tensor, n_labels: int, size: int) -> torch.Tensor:
    """Majority-pool a label map [N, R, R] to [N, size, size]."""
    onehot = F.one_hot(label_map.long(), n_labels).permute(0, 3, 1, 2).float()
    return F.adaptive_avg_pool2d(onehot, size).argmax(1)


@torch.no_grad()
def gradient_maps(G: Generator, ws: torch.Tensor, channels: Sequence[StyleChannel], *, size: int = 32, step: float = 0.1) -> torch.Tensor:
    """[len(channels), N, s, s] with s = min(size, R)."""
    styles = G.styles(ws)
    size = min(size, G.img_resolution)
    out = []
    for ch in channels:
        values = styles[ch.layer][:, ch.channel]
        sd = float(values.std()) if values.numel() > 1 else 1.0
        h = step * max(sd, 1e-3)
        state = G.synthesis_prefix(styles, start=ch.layer)
        state2 = state.repeat_interleave(2)
        edited = {k: v.repeat_interleave(2, dim=0) for k, v in styles.items()}
        s = edited[ch.layer].clone()
        s[0::2, ch.channel] += h
        s[1::2, ch.channel] -= h
        edited[ch.layer] = s
        img = G.synthesis_suffix(state2, edited)
        diff = (img[0::2] - img[1::2]) / (2 * h)
        out.append(F.adaptive_avg_pool2d(diff, size).abs().mean(1))
    return torch.stack(out)


def vote_regions(
    grad_map: torch.Tensor,
    pooled_labels: torch.Tensor,
    labels: Sequence[str],
    *,
    min_share: float = 0.5,
    min_lead: float = 0.25,
    ignore: Sequence[str] = (),
) -> dict:
    """Wu et al. voting for one channel: grad_map [N, s, s], pooled_labels [N, s, s]."""
    n = grad_map.shape[0]
    votes = torch.zeros(len(labels))
    flat_g = grad_map.flatten(1)
    flat_l = pooled_labels.flatten(1)
    for i in range(n):
        best, best_score = None, -1.0
        for r, name in enumerate(labels):
            if name in ignore:
                continue
            region = flat_l[i] == r
            count = int(region.sum())
            if count == 0:
                continue
            p = count / flat_l.shape[1]
            thr = torch.quantile(flat_g[i], 1 - p)
            top = flat_g[i] >= thr
            score = float((top & region).sum()) / count
            if score > best_score:
                best, best_score = r, score
        if best is not None and float(flat_g[i].max()) > 0:
            votes[best] += 1
    share = votes / max(n, 1)
    order = torch.argsort(share, descending=True)
    first, second = int(order[0]), int(order[1]) if len(order) > 1 else int(order[0])
    lead = float(share[first] - (share[second] if second != first else 0))
    assigned = labels[first] if share[first] > min_share and lead > min_lead else None
    return {
        "region": assigned,
        "top_region": labels[first] if share[first] > 0 else None,
        "vote_share": {labels[r]: float(share[r]) for r in range(len(labels)) if share[r] > 0},
        "lead": lead,
    }


def localise_channels(
    G: Generator,
    ws: torch.Tensor,
    channels: Sequence[StyleChannel],
    label_map: torch.Tensor,
    labels: Sequence[str],
    *,
    size: int = 32,
    ignore: Sequence[str] = (),
) -> dict[str, dict]:
    """Region assignment for each channel, keyed by ``channel.name``."""
    if not channels:
        return {}
    maps = gradient_maps(G, ws, channels, size=size)
    pooled = pool_labels(label_map, len(labels), maps.shape[-1])
    return {ch.name: vote_regions(maps[k], pooled, labels, ignore=ignore) for k, ch in enumerate(channels)}
