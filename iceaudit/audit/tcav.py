"""TCAV beside the walks (Kim et al. 2018, through Captum's `TCAV`).

For each bank subspace the concept's examples are the audit's faces walked to the high end
of its step range; the random sets are unedited faces of other seeds. A concept activation
vector (CAV) is a linear boundary, at one layer of the classifier, between the concept's
activations and one random set's; the TCAV score is the share of the audit's faces whose
score rises along the CAV (the layer gradient's sign along it). Each concept is paired with
`n_random` random sets; random-vs-random CAVs, taken in both orders (a CAV between two random
sets has no meaningful sign), are the control: a concept is significant when its scores
differ from the controls' (two-sided t-test, Holm over subspaces), as in the paper.

It needs the classifier's layers: a Python `nn.Module` (a notebook's model, a factory).
TorchScript and ONNX classifiers are skipped with the reason. The walks edit the image and
measure the score; TCAV asks whether the classifier's internal direction for the same
concept points up its score: two views of one question, compared in `agreement`.
"""
from __future__ import annotations

import tempfile
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from iceaudit.errors import UserError

if TYPE_CHECKING:  # annotations only
    from iceaudit.bank.format import Bank
    from iceaudit.record import Driver
    from iceaudit.stylegan2.networks import Generator


def module_of(score_fn: Any) -> tuple[torch.nn.Module | None, str]:
    """(the classifier's Python module, "") or (None, why TCAV cannot run on it)."""
    from iceaudit.audit.pixel_attribution import classifier_parts

    model, differentiable = classifier_parts(score_fn)
    if not differentiable or model is None:
        return None, ("TCAV reads the classifier's inner layers; this classifier exposes none "
                      "(ONNX, or a plain callable): wrap the model as a Python nn.Module to get it")
    if isinstance(model, torch.jit.ScriptModule):
        return None, ("TCAV hooks a layer of a Python nn.Module; this classifier is TorchScript, whose layers "
                      "Captum cannot hook: load it as a module (card `factory` + state-dict weights, or "
                      "`iceaudit.api` with the nn.Module) to get it")
    return model, ""


def default_layer(model: torch.nn.Module) -> str | None:
    """The last Conv2d (the usual TCAV layer of a CNN), else the last module with parameters."""
    convs = [n for n, m in model.named_modules() if n and isinstance(m, torch.nn.Conv2d)]
    if convs:
        return convs[-1]
    named = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    return named[-1] if named else None


def check_layer(score_fn: Any, layer: str | None) -> None:
    """Refuse a `--tcav-layer` the classifier does not have (before the audit spends time)."""
    model, _ = module_of(score_fn)
    if model is None or layer is None:
        return
    names = [n for n, _ in model.named_modules() if n]
    if layer not in names:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise UserError(f"--tcav-layer {layer!r} is not a layer of the classifier", hint=f"its layers: {shown}")


class _Score(torch.nn.Module):
    """The decision score as a module Captum can hook: [N, 1], the classifier kept as `net`."""

    def __init__(self, score_fn: Callable[[torch.Tensor], torch.Tensor], net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self._score = score_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._score(x).reshape(x.shape[0], 1)


def _classifier():
    """A Captum `Classifier` fitting the CAV with iceaudit's linear SVM (Captum's default needs scikit-learn)."""
    from captum.concept import Classifier

    from iceaudit.bank.concept import fit_svm

    class SVM(Classifier):
        def __init__(self) -> None:
            self._weights: torch.Tensor | None = None
            self._classes: list[int] = []

        def train_and_eval(self, dataloader, test_split_ratio: float = 0.33, **kwargs):
            xs, ys = zip(*[(x, y) for x, y in dataloader])
            x, y = torch.cat(xs).flatten(1).float(), torch.cat(ys)
            self._classes = sorted(set(y.tolist()))
            g = torch.Generator().manual_seed(0)
            order = torch.randperm(len(y), generator=g)
            n_test = int(test_split_ratio * len(y))
            test, train = order[:n_test], order[n_test:]
            pos = y == self._classes[-1]
            v = fit_svm(x[train], pos[train])  # for the held-out accuracy only
            p = x @ v
            cut = (p[train][pos[train]].mean() + p[train][~pos[train]].mean()) / 2
            accuracy = float(((p[test] > cut) == pos[test]).float().mean()) if n_test else float("nan")
            # the CAV itself on all examples: swapping the two sets then gives exactly its negative,
            # which centres the random-vs-random controls on 0.5
            cav = fit_svm(x, pos)
            self._weights = torch.stack([-cav, cav])
            return {"accs": torch.tensor(accuracy)}

        def weights(self) -> torch.Tensor:
            return self._weights

        def classes(self) -> list[int]:
            return self._classes

    return SVM()


def run_tcav(score_fn: Callable[[torch.Tensor], torch.Tensor], G: Generator, ws: torch.Tensor, bank: Bank, *,
             seeds: Sequence[int] | None = None, layer: str | None = None, n_random: int = 10, level: float = 0.05,
             drivers: Sequence[Driver] | None = None,
             progress: Callable[[int], None] = lambda k=1: None) -> dict[str, Any]:
    """TCAV scores of every bank subspace at one classifier layer, with random-concept controls.

    Args:
        score_fn: images in [-1, 1] -> decision scores; its module is hooked.
        G: the audited generator.
        ws: the audit's faces [N, num_ws, w_dim]: the inputs scored, and (walked) the concepts.
        bank: the audited bank.
        seeds: the faces' seeds; the random sets take the seeds after the largest.
        layer: a module name of the classifier (default: its last Conv2d).
        n_random: random sets per concept (and random-vs-random controls).
        level: significance level (Holm over subspaces).
        drivers: the walks' records, for the agreement.
        progress: called once per subspace.

    Returns:
        ``{"status": "ok", "layer", "n_faces", "n_random", "subspaces": {id: {score, scores, p_value,
        p_adjusted, significant, direction, cav_accuracy}}, "random_scores", "agreement"}`` or a
        ``{"status": "skipped", "reason"}``.
    """
    from captum.attr import LayerGradientXActivation
    from captum.concept import TCAV, Concept

    from iceaudit.audit.baselines import render_faces
    from iceaudit.audit.sample import sample_faces
    from iceaudit.audit.stats import holm
    from iceaudit.bank.edit import walk_images

    model, why = module_of(score_fn)
    if model is None:
        return {"status": "skipped", "reason": why}
    layer = layer or default_layer(model)
    if layer is None:
        return {"status": "skipped", "reason": "the classifier has no layer with parameters to read activations at"}
    check_layer(score_fn, layer)
    t0 = time.perf_counter()
    n = ws.shape[0]
    first = int(max(seeds)) + 1 if seeds is not None and len(seeds) else 10**6
    inputs = render_faces(G, ws)
    randoms = [Concept(k, f"random{k}", [render_faces(G, sample_faces(G, n, seed=first + k * n).ws)])
               for k in range(n_random + 1)]
    audited = {d.subspace for d in drivers} if drivers else None
    concepts = []
    for i, sub in enumerate(s for s in bank.subspaces if audited is None or s.id in audited):
        with torch.no_grad():
            hi = torch.cat([walk_images(G, sub, ws[j:j + 16], [sub.step_range[1]])[:, 0]
                            for j in range(0, n, 16)]).clamp(-1, 1)
        concepts.append(Concept(n_random + 1 + i, sub.id, [hi]))
    wrapper = _Score(score_fn, model).eval()
    hooked = f"net.{layer}"
    # controls in both orders: a random-vs-random CAV has no meaningful sign, so its scores
    # come as s and 1 - s and the control distribution is centred on 0.5 by construction
    controls = [[randoms[0], r] for r in randoms[1:]] + [[r, randoms[0]] for r in randoms[1:]]
    sets = [[c, r] for c in concepts for r in randoms[1:]] + controls
    with tempfile.TemporaryDirectory(prefix="iceaudit-tcav-") as cache, torch.enable_grad():
        tcav = TCAV(wrapper, [hooked], classifier=_classifier(), save_path=cache,
                    layer_attr_method=LayerGradientXActivation(wrapper, None, multiply_by_inputs=False))
        raw = tcav.interpret(inputs, sets, target=0)
        accs = _accuracies(tcav, hooked)

    def score_of(pair) -> float:
        key = "-".join(str(c.id) for c in pair)
        return float(raw[key][hooked]["sign_count"][0])

    random_scores = [score_of(p) for p in sets[len(concepts) * n_random:]]
    out: dict[str, dict[str, Any]] = {}
    p_values = []
    from scipy import stats as sps

    for i, c in enumerate(concepts):
        pairs = sets[i * n_random:(i + 1) * n_random]
        scores = [score_of(p) for p in pairs]
        p = float(sps.ttest_ind(scores, random_scores).pvalue) if np.std(scores + random_scores) > 0 else \
            (1.0 if np.mean(scores) == np.mean(random_scores) else 0.0)
        p_values.append(p)
        mean = float(np.mean(scores))
        out[c.name] = {"score": mean, "scores": scores, "p_value": p,
                       "direction": "raises" if mean > 0.5 else "lowers" if mean < 0.5 else "neither",
                       "cav_accuracy": float(np.mean([accs.get(f"{c.id}-{r.id}", float("nan")) for r in randoms[1:]]))}
        progress(1)
    for (sid, entry), pa in zip(out.items(), holm(p_values, level)):
        entry["p_adjusted"] = float(pa) if np.isfinite(pa) else 1.0
        entry["significant"] = bool(np.isfinite(pa) and pa < level)
    return {"status": "ok", "layer": layer, "n_faces": n, "n_random": n_random, "level": level,
            "concepts": "faces walked to the high end of each step range vs unedited faces of other seeds",
            "random_scores": random_scores, "subspaces": out, "agreement": agreement(out, drivers),
            "seconds": time.perf_counter() - t0}


def _accuracies(tcav, layer: str) -> dict[str, float]:
    """Held-out accuracy of each CAV (Captum returns it with the CAVs it trained)."""
    out = {}
    cavs = getattr(tcav, "cavs", {}) or {}
    for key, by_layer in cavs.items():
        cav = by_layer.get(layer) if isinstance(by_layer, dict) else None
        stats = getattr(cav, "stats", None) or {}
        if "accs" in stats:
            out[key] = float(stats["accs"])
    return out


def agreement(tcav: dict[str, dict[str, Any]], drivers: Sequence[Driver] | None) -> dict[str, Any] | None:
    """Do TCAV and the walks say the same? Significance (both or neither) and, where both find
    an effect, direction (TCAV score above 0.5 vs a positive walk slope)."""
    if not drivers:
        return None
    walks = {d.subspace: d for d in drivers}
    rows = []
    for sid, t in tcav.items():
        d = walks.get(sid)
        if d is None:
            continue
        both = bool(t["significant"] and d.significant)
        rows.append({"subspace": sid, "walk_significant": bool(d.significant), "tcav_significant": t["significant"],
                     "same_call": t["significant"] == bool(d.significant),
                     "same_direction": (t["score"] > 0.5) == (d.slope > 0) if both else None})
    shared = [r for r in rows if r["same_direction"] is not None]
    return {"n": len(rows), "same_call": sum(r["same_call"] for r in rows),
            "both_significant": len(shared), "same_direction": sum(bool(r["same_direction"]) for r in shared),
            "rows": rows}
