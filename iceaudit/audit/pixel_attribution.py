"""Captum pixel baselines: one verb, one method name, the same arguments everywhere.

    attr = attribute_pixels(score_fn, images, "ig_blur", n_steps=32)

`score_fn` is the audit's decision score: a differentiable callable
``images [N, 3, R, R] in [-1, 1] -> [N]``. Every method returns attributions
shaped like ``images`` (``[N, 3, R, R]``); methods that attribute to regions or
to a coarser layer (FeatureAblation, LayerGradCam) spread their value over the
pixels it belongs to, so every result can be aggregated by face region the same
way (`region_shares`).

Methods (names used by ``--baselines``):

- ``saliency``          gradient of the score (signed)
- ``input_x_gradient``  input times gradient
- ``ig_blur``           IntegratedGradients from a blurred copy of each face
- ``ig_mean``           IntegratedGradients from the mean image of the sampled faces
- ``smoothgrad``        NoiseTunnel(Saliency), SmoothGrad
- ``occlusion``         sliding grey window (perturbation only)
- ``feature_ablation``  each parser region replaced by the mean image (region level)
- ``gradcam``           LayerGradCam on the last Conv2d of a module classifier;
                        skipped (`MethodSkipped`) for TorchScript / plain callables
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

PIXEL_METHODS = (
    "saliency",
    "input_x_gradient",
    "ig_blur",
    "ig_mean",
    "smoothgrad",
    "occlusion",
    "feature_ablation",
    "gradcam",
)
PERTURBATION_METHODS = ("occlusion", "feature_ablation")  # need no gradients (ONNX models)
CHEAP_METHODS = ("saliency", "input_x_gradient", "gradcam")  # cheap enough for sensitivity_max


class MethodSkipped(Exception):
    """A baseline that cannot run on this classifier; ``str(err)`` says why."""


# --- baselines (reference images) -----------------------------------------------


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (no torchvision here)."""
    radius = min(max(1, int(math.ceil(3 * sigma))), images.shape[-1] - 1)  # reflect pad needs < R
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def blur_baseline(images: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """A blurred copy of each face; default sigma = R / 16 (4 px at 64 px)."""
    sigma = sigma if sigma is not None else images.shape[-1] / 16
    return gaussian_blur(images, sigma)


def mean_baseline(images: torch.Tensor) -> torch.Tensor:
    """The mean image of the batch, repeated for every face."""
    return images.mean(0, keepdim=True).expand_as(images).contiguous()


# --- the model's conv layer (LayerGradCam) ------------------------------------------


def classifier_parts(score_fn: Any) -> tuple[Any, bool]:
    """(the wrapped model or None, whether scores are differentiable).

    Looks at ``score_fn`` itself when it is an ``nn.Module``, else at its
    ``module`` / ``model`` attribute or, for a bound method such as the audit
    adapter's ``Classifier.decision_score``, at its owner's. An owner that says
    ``differentiable = False`` (ONNX) is taken at its word.
    """
    if isinstance(score_fn, nn.Module):
        return score_fn, True
    owners = [score_fn, getattr(score_fn, "__self__", None)]
    differentiable = all(getattr(o, "differentiable", True) for o in owners if o is not None)
    for owner in owners:
        for attr in ("module", "model"):
            model = getattr(owner, attr, None) if owner is not None else None
            if isinstance(model, nn.Module):
                return model, differentiable
    return None, differentiable


def _torchscript_route(model: torch.jit.ScriptModule) -> str:
    convs = [name for name, m in model.named_modules()
             if name and getattr(m, "original_name", type(m).__name__) == "Conv2d"]
    return torchscript_gradcam_reason(convs[-1] if convs else None)


def torchscript_gradcam_reason(last_conv: str | None) -> str:
    """Why a TorchScript classifier gets no Grad-CAM, and the route by which it can.

    Args:
        last_conv: the scripted module's last named Conv2d submodule, if it keeps one.
    """
    layer = f" (it would use `{last_conv}`, the last Conv2d)" if last_conv else ""
    return ("TorchScript modules take no forward hooks, which Grad-CAM needs: audit the same weights as a "
            f"state dict with --factory package.module:function (an nn.Module) to get it{layer}")


def find_conv_layer(score_fn: Any) -> nn.Module:
    """The last ``nn.Conv2d`` of the classifier, or `MethodSkipped` with the reason.

    TorchScript modules offer no forward hooks, which layer methods need.
    """
    model, _ = classifier_parts(score_fn)
    if model is None:
        raise MethodSkipped("the classifier is a plain callable with no nn.Module exposed (no layer to hook)")
    if isinstance(model, torch.jit.ScriptModule):
        raise MethodSkipped(_torchscript_route(model))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise MethodSkipped("the classifier has no Conv2d layer for LayerGradCam")
    return convs[-1]


# --- the verb -----------------------------------------------------------------------


def attribute_pixels(
    score_fn: ScoreFn,
    images: torch.Tensor,
    method: str,
    *,
    label_map: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    n_steps: int = 32,
    internal_batch_size: int | None = None,
    nt_samples: int = 16,
    nt_samples_batch_size: int | None = None,
    stdevs: float = 0.2,
    window: int | None = None,
    stride: int | None = None,
    perturbations_per_eval: int = 8,
    blur_sigma: float | None = None,
    layer: nn.Module | None = None,
) -> torch.Tensor:
    """Attribute the decision score of each face to its pixels with ``method``.

    images: ``[N, 3, R, R]`` in [-1, 1]. Returns ``[N, 3, R, R]`` (detached).
    ``reference`` is the batch used for the mean image (default: ``images``);
    ``label_map`` (``[N, R, R]`` ints) is required by ``feature_ablation``.
    """
    from captum.attr import (
        FeatureAblation,
        InputXGradient,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    if method not in PIXEL_METHODS:
        raise ValueError(f"unknown pixel method {method!r}; choose from {', '.join(PIXEL_METHODS)}")
    assert images.ndim == 4 and images.shape[1] == 3, f"images must be [N, 3, R, R], got {tuple(images.shape)}"
    images = images.detach()
    if method not in PERTURBATION_METHODS:
        if not classifier_parts(score_fn)[1]:
            raise MethodSkipped(f"{method} needs gradients and this classifier is not differentiable (ONNX); use occlusion or feature_ablation")
        images = images.clone().requires_grad_(True)  # gradient methods (avoids captum's warning)
    n, _, r, _ = images.shape
    reference = images if reference is None else reference.detach()

    if method == "saliency":
        attr = Saliency(score_fn).attribute(images, abs=False)
    elif method == "input_x_gradient":
        attr = InputXGradient(score_fn).attribute(images)
    elif method in ("ig_blur", "ig_mean"):
        base = blur_baseline(images, blur_sigma) if method == "ig_blur" else reference.mean(0, keepdim=True).expand_as(images)
        attr = IntegratedGradients(score_fn).attribute(
            images, baselines=base.contiguous(), n_steps=n_steps, internal_batch_size=internal_batch_size
        )
    elif method == "smoothgrad":
        attr = NoiseTunnel(Saliency(score_fn)).attribute(
            images, nt_type="smoothgrad", nt_samples=nt_samples, nt_samples_batch_size=nt_samples_batch_size,
            stdevs=stdevs, abs=False,
        )
    elif method == "occlusion":
        window = window or max(2, r // 8)
        stride = stride or max(1, window // 2)
        attr = Occlusion(score_fn).attribute(
            images, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.0,
            perturbations_per_eval=perturbations_per_eval,
        )
    elif method == "feature_ablation":
        if label_map is None:
            raise ValueError("feature_ablation needs the parser's label_map [N, R, R]")
        assert label_map.shape == (n, r, r), f"label_map must be {(n, r, r)}, got {tuple(label_map.shape)}"
        mask = label_map.to(images.device).long()[:, None].expand(n, 3, r, r)
        base = reference.mean(0, keepdim=True).expand_as(images).contiguous()
        attr = FeatureAblation(score_fn).attribute(
            images, baselines=base, feature_mask=mask, perturbations_per_eval=perturbations_per_eval
        )
    else:  # gradcam
        layer = layer or find_conv_layer(score_fn)
        cam = LayerGradCam(score_fn, layer).attribute(images, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam, (r, r), interpolate_mode="bilinear")
        attr = (cam / 3).expand(n, 3, r, r)
    return attr.detach().reshape(n, 3, r, r).contiguous()


# --- aggregation by face region -------------------------------------------------------


def pixel_mass(attr: torch.Tensor) -> torch.Tensor:
    """Per-pixel attribution mass ``[N, R, R]``: |sum over RGB|."""
    return attr.sum(1).abs()


@dataclass
class RegionTable:
    """Per-face, per-part numbers of one attribution ([N, L] each), so batches
    can be concatenated before summarising (the attributions themselves need
    not be kept)."""

    mass_share: torch.Tensor  # share of the face's attribution mass in the part
    area_share: torch.Tensor  # share of the face's pixels in the part
    value: torch.Tensor  # mean attribution per pixel of the part (FeatureAblation: the part's score drop)

    @staticmethod
    def of(attr: torch.Tensor, label_map: torch.Tensor, n_labels: int) -> "RegionTable":
        mass = pixel_mass(attr).flatten(1).double()
        value = attr[:, 0].flatten(1).double()  # FA writes the part's value to each of its pixels
        lab = label_map.flatten(1).long().to(mass.device)
        per_part = lambda x: torch.zeros(x.shape[0], n_labels, dtype=x.dtype, device=x.device).scatter_add_(1, lab, x)  # noqa: E731
        count = per_part(torch.ones_like(mass))
        return RegionTable(
            mass_share=per_part(mass) / mass.sum(1, keepdim=True).clamp_min(1e-12),
            area_share=count / lab.shape[1],
            value=per_part(value) / count.clamp_min(1),
        )

    @staticmethod
    def cat(tables: Sequence["RegionTable"]) -> "RegionTable":
        return RegionTable(*(torch.cat([getattr(t, k) for t in tables]) for k in ("mass_share", "area_share", "value")))

    def shares(self, labels: Sequence[str]) -> dict[str, dict[str, float]]:
        """Mass share vs area share per part, averaged over faces (each face weighs
        the same); ``ratio`` > 1: the method looks at the part more than its size
        alone explains. Parts absent from every face are left out."""
        out = {}
        for i, name in enumerate(labels):
            a = self.area_share[:, i].mean().item()
            if a == 0:
                continue
            m = self.mass_share[:, i].mean().item()
            out[name] = {"mass_share": m, "area_share": a, "ratio": m / a}
        return out

    def importance(self, labels: Sequence[str]) -> dict[str, dict[str, float]]:
        """FeatureAblation per part: ``importance`` = mean score drop when the part is
        replaced by the mean image (over faces that have the part), ``share`` = its
        |.| share of the face's summed |drops|, and the part's ``area_share``."""
        present = self.area_share > 0
        val = torch.where(present, self.value, torch.zeros_like(self.value))
        share = val.abs() / val.abs().sum(1, keepdim=True).clamp_min(1e-12)
        out = {}
        for i, name in enumerate(labels):
            sel = present[:, i]
            if not sel.any():
                continue
            out[name] = {
                "importance": val[sel, i].mean().item(),
                "abs_importance": val[sel, i].abs().mean().item(),
                "share": share[:, i].mean().item(),
                "area_share": self.area_share[:, i].mean().item(),
            }
        return out


def region_shares(attr: torch.Tensor, label_map: torch.Tensor, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Share of attribution mass per face part against its share of area (`RegionTable.shares`)."""
    return RegionTable.of(attr, label_map, len(labels)).shares(labels)


def region_importance(attr: torch.Tensor, label_map: torch.Tensor, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Region-level scores of a FeatureAblation attribution (`RegionTable.importance`)."""
    return RegionTable.of(attr, label_map, len(labels)).importance(labels)


def rank_regions(regions: dict[str, dict[str, float]]) -> list[str]:
    """Parts strongest first: by ``abs_importance`` (region methods) or ``ratio`` (maps)."""
    key = "abs_importance" if regions and "abs_importance" in next(iter(regions.values())) else "ratio"
    return sorted(regions, key=lambda k: -regions[k][key])


def mean_map(attr: torch.Tensor) -> torch.Tensor:
    """Mean over faces of the per-pixel mass, scaled to max 1 (``[R, R]``)."""
    m = pixel_mass(attr).mean(0)
    return m / m.max().clamp_min(1e-12)


# --- Captum's quality metrics ------------------------------------------------------------


def quality_metrics(
    score_fn: ScoreFn,
    images: torch.Tensor,
    attr: torch.Tensor,
    method: str,
    *,
    n_perturb_samples: int = 8,
    noise: float = 0.05,
    sensitivity: bool | None = None,
    seed: int = 0,
    **method_opts: Any,
) -> dict[str, float | None | str]:
    """Captum ``infidelity`` (normalised, Gaussian perturbations) for any method,
    and ``sensitivity_max`` (radius 0.02) for the cheap gradient methods
    (re-running the explanation ``n_perturb_samples`` times costs that many
    attributions; for IG, SmoothGrad and occlusion it is left out)."""
    from captum.metrics import infidelity, sensitivity_max

    g = torch.Generator(device="cpu").manual_seed(seed)

    def perturb(inputs: torch.Tensor):
        eps = torch.randn(inputs.shape, generator=g).to(inputs) * noise
        return eps, inputs - eps

    with torch.no_grad():
        inf = infidelity(score_fn, perturb, images, attr, n_perturb_samples=n_perturb_samples, normalize=True)
    out: dict[str, float | None | str] = {"infidelity": float(inf.mean())}
    if sensitivity is None:
        sensitivity = method in CHEAP_METHODS
    if sensitivity:
        def explain(x: Any, **kw: Any) -> tuple[torch.Tensor]:
            x = x[0] if isinstance(x, tuple) else x  # captum passes a tuple of inputs
            return (attribute_pixels(score_fn, x, method, **method_opts),)

        # Captum draws the perturbations from the global generator: seed it here, so the number
        # does not depend on what ran before (a resumed audit equals an uninterrupted one)
        with torch.random.fork_rng(devices=[images.device] if images.device.type == "cuda" else []):
            torch.manual_seed(seed)
            sens = sensitivity_max(explain, images, perturb_radius=0.02, n_perturb_samples=n_perturb_samples)
        scale = attr.flatten(1).norm(dim=1).mean().clamp_min(1e-12)
        out["sensitivity_max"] = float(sens.mean())
        out["sensitivity_max_relative"] = float(sens.mean() / scale)
    else:
        out["sensitivity_max"] = None
        out["sensitivity_max_relative"] = None
        out["sensitivity_note"] = f"not computed for {method}: it re-runs the method {n_perturb_samples} times"
    return out
