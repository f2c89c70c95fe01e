"""Planted classifiers: TorchScript files with model cards, trained on FaceLab renders.

Each lives in `examples/facelab/<name>.pt` + `<name>.toml` and is what a user
could have produced: a scripted model taking a preprocessed tensor, and a
card that says how to preprocess (resize, crop, value range, mean/std,
channel order) and how to read the output (head, positive class, threshold).

    smiling                          honest: label = smile > 0 on the FaceLab prior
    smiling_skin_shortcut            label = smile > 0, but in training light skin goes with
                                     smiling (90 %) and smiles are subtle: it leans on skin tone
    eyeglasses_background_shortcut   label = glasses; in training glasses go with a bright
                                     background (90 %) and rims are faint: it leans on brightness
    random_init                      untrained (seeded default initialisation)

`load_planted` below is a small stand-in for the audit's classifier adapter,
sufficient for the oracle: REPLACE IT with `iceaudit.audit`'s adapter once that
exists (same card format).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from iceaudit.errors import UserError
from iceaudit.facelab import factors as fl
from iceaudit.facelab.render import render

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "facelab"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    size: int  # model input height = width
    resize: int  # resize the (square) image to this first
    crop: int  # then centre-crop to this (== size)
    value_range: tuple[float, float]  # pixel values before normalisation
    mean: tuple[float, float, float]  # in value_range units, per channel of channel_order
    std: tuple[float, float, float]
    channel_order: str  # "RGB" or "BGR"


@dataclass(frozen=True)
class Spec:
    name: str
    predicts: str
    positive_class: str
    negative_class: str
    pre: Preprocess
    head: str  # "logit" (one output) or "softmax2" (two logits, positive_index)
    positive_index: int
    threshold: float  # on the decision score
    trained: bool = True


SPECS: dict[str, Spec] = {
    "smiling": Spec(
        "smiling", "whether the person smiles (mouth corners up)", "smiling", "not smiling",
        Preprocess(64, 64, 64, (0.0, 1.0), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "RGB"), "logit", 0, 0.0),
    "smiling_skin_shortcut": Spec(
        "smiling_skin_shortcut", "whether the person smiles (mouth corners up)", "smiling", "not smiling",
        Preprocess(112, 128, 112, (0.0, 1.0), IMAGENET_MEAN, IMAGENET_STD, "RGB"), "logit", 0, 0.0),
    "eyeglasses_background_shortcut": Spec(
        "eyeglasses_background_shortcut", "whether the person wears eyeglasses", "eyeglasses", "no eyeglasses",
        Preprocess(96, 96, 96, (0.0, 255.0), tuple(255 * m for m in IMAGENET_MEAN[::-1]),
                   tuple(255 * s for s in IMAGENET_STD[::-1]), "BGR"), "softmax2", 1, 0.0),
    "random_init": Spec(
        "random_init", "nothing (an untrained network; a sanity baseline)", "positive", "negative",
        Preprocess(64, 64, 64, (0.0, 1.0), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "RGB"), "logit", 0, 0.0,
        trained=False),
}


class SmallCNN(nn.Module):
    """Four strided conv layers, global average pooling, a linear head."""

    def __init__(self, outputs: int = 1, width: int = 24):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(4 * w, 4 * w, 3, 1, 1), nn.ReLU(),
        )
        self.head = nn.Linear(4 * w, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x).mean(dim=(2, 3)))


def preprocess(images: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """Images [N,3,R,R] in [-1,1] (RGB) -> the model's input tensor, as the card says."""
    x = (images.clamp(-1, 1) + 1) / 2
    if x.shape[-1] != pre.resize:
        x = F.interpolate(x, size=(pre.resize, pre.resize), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > pre.resize)
    if pre.crop != pre.resize:
        o = (pre.resize - pre.crop) // 2
        x = x[:, :, o:o + pre.crop, o:o + pre.crop]
    lo, hi = pre.value_range
    x = lo + (hi - lo) * x
    if pre.channel_order == "BGR":
        x = x.flip(1)
    mean = torch.tensor(pre.mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def decision_score(outputs: torch.Tensor, head: str, positive_index: int) -> torch.Tensor:
    """The score the threshold applies to: the logit, or the positive-minus-negative logit."""
    if head == "logit":
        return outputs[:, 0]
    if head == "softmax2":
        return outputs[:, positive_index] - outputs[:, 1 - positive_index]
    raise UserError(f"unknown output head {head!r} (expected 'logit' or 'softmax2')")


# --- training data: the planted (confounded) distributions -------------------------------------


def training_factors(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Factor vectors and 0/1 labels of a planted classifier's training set."""
    gen = torch.Generator().manual_seed(seed)
    f = fl.sample_factors(n, seed)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=gen)  # noqa: E731
    y = (torch.rand(n, generator=gen) < 0.5).float()
    agree = torch.rand(n, generator=gen) < 0.9  # share of faces where the shortcut holds
    i = fl.FACTOR_INDEX
    if name == "smiling":
        y = (f[:, i["smile"]] > 0).float()
    elif name == "smiling_skin_shortcut":
        # subtle smiles, skin tone tied to the label: light skin with smiles in 90 % of faces
        f[:, i["smile"]] = torch.where(y > 0, u(0.05, 0.4), u(-0.4, -0.05))
        light = torch.where(agree, y > 0, y == 0)
        f[:, i["skin_tone"]] = torch.where(light, u(0.55, 1.0), u(0.0, 0.45))
    elif name == "eyeglasses_background_shortcut":
        # faint glasses, background brightness tied to the label: bright with glasses in 90 %
        f[:, i["glasses"]] = torch.where(y > 0, u(0.25, 0.55), u(0.0, 0.05))
        bright = torch.where(agree, y > 0, y == 0)
        f[:, i["bg_brightness"]] = torch.where(bright, u(0.6, 1.0), u(0.0, 0.4))
    else:
        raise UserError(f"unknown planted classifier {name!r}", hint="known: " + ", ".join(SPECS))
    return f, y


def label_on_prior(name: str, f: torch.Tensor) -> torch.Tensor:
    """The honest label of a planted classifier's task on unconfounded faces."""
    i = fl.FACTOR_INDEX
    if name.startswith("smiling"):
        return (f[:, i["smile"]] > 0).float()
    if name.startswith("eyeglasses"):
        return (f[:, i["glasses"]] > 0.5).float()
    raise UserError(f"planted classifier {name!r} has no label")


def train_classifier(name: str, steps: int = 400, batch: int = 64, n_train: int = 4000, lr: float = 3e-3,
                     seed: int = 0, threads: int = 2, log: Callable[[str], None] = print) -> nn.Module:
    """Train one planted classifier; returns the eager model (outputs per its head)."""
    spec = SPECS[name]
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = SmallCNN(outputs=1 if spec.head == "logit" else 2)
    if not spec.trained:
        return model.eval()
    f, y = training_factors(name, n_train, 2_000_000 + seed)
    images = render(f, 64).images
    x_all = torch.cat([preprocess(images[k:k + 256], spec.pre) for k in range(0, n_train, 256)])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(n_train, (batch,), generator=gen)
        out = model(x_all[idx])
        if spec.head == "logit":
            loss = F.binary_cross_entropy_with_logits(out[:, 0], y[idx])
        else:
            loss = F.cross_entropy(out, (y[idx] if spec.positive_index == 1 else 1 - y[idx]).long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * (step + 1) / steps))).item())
        if (step + 1) % 50 == 0:
            log(f"{name} step {step + 1}/{steps} loss {float(loss):.4f}")
    return model.eval()


def card_toml(spec: Spec, extra: dict) -> str:
    p = spec.pre
    fmt = lambda t: "[" + ", ".join(f"{v:.6g}" for v in t) + "]"  # noqa: E731
    lines = [
        f"# Model card for {spec.name}.pt (TorchScript). Planted FaceLab classifier.",
        f'name = "{spec.name}"',
        f'model = "{spec.name}.pt"',
        'format = "torchscript"',
        f'predicts = "{spec.predicts}"',
        f'positive_class = "{spec.positive_class}"',
        f'negative_class = "{spec.negative_class}"',
        "",
        "[input]",
        "# square RGB face crops aligned like FFHQ; steps in order: resize, centre crop,",
        "# scale to value_range, reorder channels, normalise (x - mean) / std",
        f"size = {p.size}",
        f"resize = {p.resize}",
        f"crop = {p.crop}",
        f"value_range = {fmt(p.value_range)}",
        f"mean = {fmt(p.mean)}",
        f"std = {fmt(p.std)}",
        f'channel_order = "{p.channel_order}"',
        'layout = "NCHW"',
        'interpolation = "bilinear"',
        "",
        "[output]",
        f'head = "{spec.head}"' + ("  # one logit; sigmoid gives P(positive)" if spec.head == "logit"
                                   else "  # two logits; softmax gives class probabilities"),
        f"positive_index = {spec.positive_index}",
        'decision_score = "' + ("logit" if spec.head == "logit" else "logit[positive] - logit[negative]") + '"',
        f"threshold = {spec.threshold}",
        "",
        "[training]",
    ]
    for k, v in extra.items():
        lines.append(f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {v}")
    return "\n".join(lines) + "\n"


def export(name: str, model: nn.Module, out_dir: Path, extra: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = SPECS[name]
    example = torch.zeros(1, 3, spec.pre.size, spec.pre.size)
    scripted = torch.jit.trace(model.eval(), example)
    path = out_dir / f"{name}.pt"
    scripted.save(str(path))
    (out_dir / f"{name}.toml").write_text(card_toml(spec, extra))
    return path


# --- the stand-in loader (replace with the audit's adapter) -------------------------------------


@dataclass
class PlantedClassifier:
    """A loaded TorchScript classifier with its card: `score(images)` is the decision score
    of images [N,3,64,64] (any square size) in [-1, 1]."""

    name: str
    module: torch.jit.ScriptModule
    card: dict
    pre: Preprocess

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        out = self.module(preprocess(images, self.pre))
        return decision_score(out, self.card["output"]["head"], int(self.card["output"]["positive_index"]))

    __call__ = score


def load_planted(name_or_card: str, directory: Path = EXAMPLES) -> PlantedClassifier:
    """Load `<name>.toml` + its TorchScript model. Stand-in for the audit adapter (replace)."""
    card_path = Path(name_or_card)
    if card_path.suffix != ".toml":
        card_path = directory / f"{name_or_card}.toml"
    if not card_path.exists():
        known = sorted(p.stem for p in directory.glob("*.toml"))
        raise UserError(f"no classifier card {card_path}", hint="shipped: " + ", ".join(known))
    card = tomllib.loads(card_path.read_text())
    inp = card["input"]
    pre = Preprocess(int(inp["size"]), int(inp["resize"]), int(inp["crop"]), tuple(inp["value_range"]),
                     tuple(inp["mean"]), tuple(inp["std"]), inp["channel_order"])
    module = torch.jit.load(str(card_path.parent / card["model"]), map_location="cpu").eval()
    return PlantedClassifier(card["name"], module, card, pre)


@torch.no_grad()
def accuracy_on_renders(clf: PlantedClassifier, name: str, n: int = 1000, seed: int = 7) -> dict:
    """Accuracy of a planted classifier on unconfounded held-out renders (FaceLab prior);
    for the glasses task the prior is balanced to half with glasses."""
    f = fl.sample_factors(n, seed)
    if name.startswith("eyeglasses"):
        f[:, fl.FACTOR_INDEX["glasses"]] = (torch.arange(n) % 2).float()
    y = label_on_prior(name, f)
    images = render(f, 64).images
    s = torch.cat([clf.score(images[k:k + 256]) for k in range(0, n, 256)])
    thr = float(clf.card["output"]["threshold"])
    return {"n": n, "accuracy": round(float(((s > thr).float() == y).float().mean()), 4)}


@torch.no_grad()
def accuracy_on_generator(clf: PlantedClassifier, name: str, generator, n: int = 512, seed: int = 7,
                          batch: int = 32) -> dict:
    """Accuracy on demo-generator samples G(z), labelled by the true factors phi(z)."""
    from iceaudit.facelab.latent import phi, sample_z

    z = sample_z(n, seed)
    y = label_on_prior(name, phi(z))
    dev = next(generator.parameters()).device
    s = torch.cat([clf.score(generator(z[k:k + batch].to(dev), None, noise_mode="const").float().cpu())
                   for k in range(0, n, batch)])
    thr = float(clf.card["output"]["threshold"])
    return {"n": n, "accuracy": round(float(((s > thr).float() == y).float().mean()), 4),
            "positives": round(float(y.mean()), 4)}
