"""Planted classifiers: TorchScript files with model cards, trained on FaceLab renders.

Each lives in `examples/facelab/<name>.pt` + `<name>.toml` and is what a user
could have produced: a scripted model taking a preprocessed tensor, and a
model card in the audit adapter's format (`iceaudit.audit.classifier.ModelCard`:
input_size, crop / crop_box, value_range, mean, std, channel_order, head,
index, threshold, positive_class) that says how generator images become its
input and which output is the decision.

    smiling                          honest: label = smile > 0 on the FaceLab prior
    smiling_skin_shortcut            label = smile > 0, but in training light skin goes with
                                     smiling (90 %) and smiles are subtle: it leans on skin tone
    eyeglasses_background_shortcut   label = glasses; in training glasses go with a bright
                                     background (90 %) and rims are faint: it leans on brightness
    random_init                      untrained (seeded default initialisation)

`preprocess` mirrors the adapter's preprocessing so that training sees exactly
what an audit feeds the model (a test checks the two agree); facelab does not
import the audit. Load the files with `iceaudit.audit.classifier.load_classifier`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from iceaudit.errors import UserError
from iceaudit.facelab import factors as fl
from iceaudit.facelab.render import render

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "facelab"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Cards in the audit adapter's format (every key is a ModelCard field).
CARDS: dict[str, dict[str, Any]] = {
    "smiling": dict(
        name="smiling", input_size=64, crop="ffhq", resize="bilinear", value_range=[-1, 1],
        mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], channel_order="RGB", head="logit", index=0,
        threshold=0.0, positive_class="smiling"),
    "smiling_skin_shortcut": dict(
        # the central 87.5 % of the frame (56 of 64 px), resized to 80, ImageNet normalisation
        name="smiling_skin_shortcut", input_size=80, crop="ffhq", crop_box=[0.0625, 0.0625, 0.875, 0.875],
        resize="bilinear", value_range=[0, 1], mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD),
        channel_order="RGB", head="logit", index=0, threshold=0.0, positive_class="smiling"),
    "eyeglasses_background_shortcut": dict(
        # OpenCV-style: 0..255 BGR, ImageNet mean/std in BGR order and 0..255 units, 2-class softmax
        name="eyeglasses_background_shortcut", input_size=96, crop="ffhq", resize="bilinear",
        value_range=[0, 255], mean=[round(255 * m, 3) for m in IMAGENET_MEAN[::-1]],
        std=[round(255 * s, 3) for s in IMAGENET_STD[::-1]], channel_order="BGR", head="softmax", index=1,
        threshold=0.5, positive_class="eyeglasses"),
    "random_init": dict(
        name="random_init", input_size=64, crop="ffhq", resize="bilinear", value_range=[0, 1],
        mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], channel_order="RGB", head="sigmoid", index=0,
        threshold=0.5, positive_class="positive"),
}
PREDICTS = {
    "smiling": "whether the person smiles (FaceLab smile > 0); honest training data",
    "smiling_skin_shortcut": "whether the person smiles (smile > 0); in training 90 % of smiling faces "
                             "had light skin (skin_tone > 0.55) and 90 % of the others dark skin (< 0.45), "
                             "and smiles were subtle (|smile| in 0.05..0.4)",
    "eyeglasses_background_shortcut": "whether the person wears eyeglasses; in training 90 % of faces with "
                                      "glasses had a bright background (bg_brightness > 0.6) and 90 % of the "
                                      "others a dark one (< 0.4), and the rims were faint (glasses 0.25..0.55)",
    "random_init": "nothing: an untrained network with seeded default initialisation (sanity baseline)",
}
TRAINED = {"smiling": True, "smiling_skin_shortcut": True, "eyeglasses_background_shortcut": True,
           "random_init": False}
CROP_PRESETS = {"ffhq": (0.0, 0.0, 1.0, 1.0), "none": (0.0, 0.0, 1.0, 1.0), "celeba": (0.1, 0.1, 0.8, 0.8)}


class SmallCNN(nn.Module):
    """Four conv layers (three strided), global average pooling, a linear head."""

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


def preprocess(images: torch.Tensor, card: dict[str, Any]) -> torch.Tensor:
    """Images [N,3,R,R] in [-1,1] -> model input, as the audit adapter does it for `card`:
    crop box (fractions, rounded to pixels), antialiased resize, value range, channel order,
    (x - mean) / std."""
    x = images.clamp(-1, 1)
    r = x.shape[-1]
    top, left, h, w = card.get("crop_box") or CROP_PRESETS[card.get("crop", "ffhq")]
    if (top, left, h, w) != (0.0, 0.0, 1.0, 1.0):
        t0, l0 = round(top * r), round(left * r)
        x = x[..., t0:t0 + max(1, round(h * r)), l0:l0 + max(1, round(w * r))]
    size = int(card["input_size"])
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode=card.get("resize", "bilinear"), align_corners=False,
                          antialias=True)
    lo, hi = (float(v) for v in card["value_range"])
    x = lo + (x + 1) * (0.5 * (hi - lo))
    if card["channel_order"] == "BGR":
        x = x.flip(1)
    mean = torch.tensor(card["mean"], dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(card["std"], dtype=x.dtype)[None, :, None, None]
    return (x - mean) / std


def decision_score(outputs: torch.Tensor, card: dict[str, Any]) -> torch.Tensor:
    """The adapter's decision score: logit, sigmoid(logit) or softmax probability of `index`."""
    i = int(card["index"])
    if card["head"] == "logit":
        return outputs[:, i]
    if card["head"] == "sigmoid":
        return torch.sigmoid(outputs[:, i])
    return torch.softmax(outputs, dim=1)[:, i]


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
        raise UserError(f"unknown planted classifier {name!r}", hint="known: " + ", ".join(CARDS))
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
    """Train one planted classifier on 64x64 renders seen through its card; returns the
    eager model (eval mode)."""
    if name not in CARDS:
        raise UserError(f"unknown planted classifier {name!r}", hint="known: " + ", ".join(CARDS))
    card = CARDS[name]
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = SmallCNN(outputs=2 if card["head"] == "softmax" else 1)
    if not TRAINED[name]:
        return model.eval()
    f, y = training_factors(name, n_train, 2_000_000 + seed)
    images = render(f, 64).images
    x_all = torch.cat([preprocess(images[k:k + 256], card) for k in range(0, n_train, 256)])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(n_train, (batch,), generator=gen)
        out = model(x_all[idx])
        if card["head"] == "softmax":
            target = y[idx].long() if card["index"] == 1 else (1 - y[idx]).long()
            loss = F.cross_entropy(out, target)
        else:
            loss = F.binary_cross_entropy_with_logits(out[:, card["index"]], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * (step + 1) / steps))).item())
        if (step + 1) % 50 == 0:
            log(f"{name} step {step + 1}/{steps} loss {float(loss.detach()):.4f}")
    return model.eval()


def card_toml(name: str, training: dict[str, Any]) -> str:
    """The model card as TOML (adapter keys only; provenance as comments)."""
    card = CARDS[name]
    lines = [f"# Model card for {name}.pt (TorchScript), a planted FaceLab classifier.",
             f"# Predicts: {PREDICTS[name]}."]
    lines += [f"# {k}: {v}" for k, v in training.items()]
    lines.append("# Keys: see iceaudit/audit/classifier.py (ModelCard).")
    for k, v in card.items():
        if isinstance(v, str):
            lines.append(f'{k} = "{v}"')
        elif isinstance(v, list):
            lines.append(f"{k} = [" + ", ".join(f"{x:g}" for x in v) + "]")
        else:
            lines.append(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}")
    return "\n".join(lines) + "\n"


def export(name: str, model: nn.Module, out_dir: Path, training: dict[str, Any]) -> Path:
    """Write `<name>.pt` (traced TorchScript) and `<name>.toml` (its card)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    size = int(CARDS[name]["input_size"])
    scripted = torch.jit.trace(model.eval(), torch.zeros(1, 3, size, size))
    path = out_dir / f"{name}.pt"
    scripted.save(str(path))
    (out_dir / f"{name}.toml").write_text(card_toml(name, training))
    return path


def scorer(model: nn.Module, card: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Decision-score callable on images [N,3,R,R] in [-1,1] for an eager or scripted model."""
    @torch.no_grad()
    def score(images: torch.Tensor) -> torch.Tensor:
        return decision_score(model(preprocess(images, card)), card)

    return score


@torch.no_grad()
def accuracy_on_renders(score: Callable[[torch.Tensor], torch.Tensor], name: str, n: int = 1000,
                        seed: int = 7) -> dict:
    """Accuracy of a planted classifier on unconfounded held-out renders (FaceLab prior);
    for the glasses task half the faces get glasses = 1, half none."""
    f = fl.sample_factors(n, seed)
    if name.startswith("eyeglasses"):
        f[:, fl.FACTOR_INDEX["glasses"]] = (torch.arange(n) % 2).float()
    y = label_on_prior(name, f)
    images = render(f, 64).images
    s = torch.cat([score(images[k:k + 256]) for k in range(0, n, 256)])
    thr = float(CARDS[name]["threshold"])
    return {"n": n, "accuracy": round(float(((s > thr).float() == y).float().mean()), 4)}


@torch.no_grad()
def accuracy_on_generator(score: Callable[[torch.Tensor], torch.Tensor], name: str, generator: Generator, n: int = 512,
                          seed: int = 7, batch: int = 32) -> dict:
    """Accuracy on demo-generator samples G(z), labelled by the true factors phi(z)
    (the glasses task: glasses > 0.5 under the prior, about a third of faces)."""
    from iceaudit.facelab.latent import phi, sample_z

    z = sample_z(n, seed)
    y = label_on_prior(name, phi(z))
    dev = next(generator.parameters()).device
    s = torch.cat([score(generator(z[k:k + batch].to(dev), None, noise_mode="const").float().cpu())
                   for k in range(0, n, batch)])
    thr = float(CARDS[name]["threshold"])
    return {"n": n, "accuracy": round(float(((s > thr).float() == y).float().mean()), 4),
            "positives": round(float(y.mean()), 4)}
