"""The classifier adapter: a user's model + a model card -> one decision score.

Inputs a user has:

- a TorchScript file (``torch.jit.save``): it runs its own code, so it is loaded
  only with ``trust`` (``--trust-classifier``), see `iceaudit.audit.trust`;
- a ``package.module:Class`` (an ``nn.Module`` from an installed package, or a
  function annotated to return one; or ``path/to/file.py:Class`` named by the
  user) plus a state dict file (read with ``torch.load(weights_only=True)``:
  never unpickled);
- an ONNX file (needs onnxruntime). ONNX models give no gradients: only the
  gradient-free parts of iceaudit (walks, statistics, counterfactuals by
  bisection, perturbation baselines) can use them. ``Classifier.differentiable``
  says which kind you have.

The model card says how generator images become the model's input and which
output is the decision (TOML or YAML file, every key also a CLI flag)::

    name = "smile-net"
    input_size = 128            # or [height, width]; default: generator resolution
    crop = "ffhq"               # ffhq | celeba | none   (see CROP_PRESETS)
    resize = "bilinear"         # bilinear | bicubic, always antialiased
    value_range = [0, 1]        # [0, 1] | [-1, 1] | [0, 255]
    mean = [0.5, 0.5, 0.5]      # in value_range units and the model's channel order
    std = [0.5, 0.5, 0.5]
    channel_order = "RGB"       # RGB | BGR
    head = "sigmoid"            # logit | softmax | sigmoid
    index = 0                   # the logit index / softmax class / sigmoid unit
    threshold = 0.5             # default: 0 for logit, 0.5 otherwise
    positive_class = "smiling"
    factory = "mypkg.nets:Net"  # only for state-dict weights: an installed nn.Module class (or a function -> nn.Module)

Decision score (``score > threshold`` means the positive class):
``logit``: ``out[:, index]``; ``sigmoid``: ``sigmoid(out[:, index])``;
``softmax``: ``softmax(out)[:, index]``.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from iceaudit.errors import UserError, brief
from iceaudit.validation import read_record
from iceaudit.precision import autocast
from iceaudit.audit.trust import check_runnable, is_path_spec, resolve_factory, trust_from_env

HEADS = ("logit", "softmax", "sigmoid")
VALUE_RANGES = {(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)}
# Crop boxes as fractions of the generator image: (top, left, height, width).
CROP_PRESETS: dict[str, tuple[float, float, float, float]] = {
    # The whole FFHQ-aligned frame: the model was trained on FFHQ-style crops.
    "ffhq": (0.0, 0.0, 1.0, 1.0),
    "none": (0.0, 0.0, 1.0, 1.0),
    # Central 80 % square (rows and columns 0.1R..0.9R): the tighter face framing
    # CelebA-style classifiers usually see (ears, hair edges and most background
    # cut away). For any other framing set crop_box = [top, left, height, width].
    "celeba": (0.1, 0.1, 0.8, 0.8),
}


@dataclass
class ModelCard:
    name: str = "classifier"
    input_size: tuple[int, int] | None = None  # (H, W); None: generator resolution
    crop: str = "ffhq"
    crop_box: tuple[float, float, float, float] | None = None  # overrides the preset
    resize: str = "bilinear"
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    head: str = "logit"
    index: int = 0
    threshold: float | None = None
    positive_class: str = "positive"
    factory: str | None = None

    def __post_init__(self) -> None:
        for key in ("name", "crop", "resize", "channel_order", "head", "positive_class"):
            if not isinstance(getattr(self, key), str):
                raise UserError(f"model card: {key} must be a string, got {getattr(self, key)!r}")
        if self.factory is not None and not isinstance(self.factory, str):
            raise UserError(f"model card: factory must be a string package.module:function, got {self.factory!r}")
        if self.input_size is not None:
            sides = [self.input_size] * 2 if not isinstance(self.input_size, (list, tuple)) else list(self.input_size)
            if len(sides) != 2 or not all(_is_int(v) and MIN_INPUT_SIDE <= v <= MAX_INPUT_SIDE for v in sides):
                raise UserError(f"model card: input_size must be N or [H, W] with whole sizes from {MIN_INPUT_SIDE} "
                                f"to {MAX_INPUT_SIDE} pixels, got {self.input_size!r}")
            self.input_size = (int(sides[0]), int(sides[1]))
        if self.crop not in CROP_PRESETS:
            raise UserError(f"model card: crop must be one of {', '.join(CROP_PRESETS)}, not {self.crop!r}")
        if self.crop_box is not None:
            box = tuple(float(v) for v in self.crop_box)
            t, l, h, w = box if len(box) == 4 else (-1, -1, -1, -1)
            if not (0 <= t and 0 <= l and h > 0 and w > 0 and t + h <= 1 + 1e-9 and l + w <= 1 + 1e-9):
                raise UserError(f"model card: crop_box must be [top, left, height, width] as fractions inside [0, 1], got {self.crop_box}")
            self.crop_box = box
        if self.resize not in ("bilinear", "bicubic"):
            raise UserError(f"model card: resize must be bilinear or bicubic, not {self.resize!r}")
        vr = self.value_range
        if isinstance(vr, str):
            vr = vr.strip("[]() ").split(",")
        try:
            vr = tuple(float(v) for v in vr)
        except (TypeError, ValueError):
            vr = ()
        if vr not in VALUE_RANGES:
            raise UserError(f"model card: value_range must be [0, 1], [-1, 1] or [0, 255], not {self.value_range!r}")
        self.value_range = vr
        self.mean, self.std = _triple("mean", self.mean), _triple("std", self.std)
        if min(self.std) <= 0:
            raise UserError(f"model card: std must be positive, got {list(self.std)}")
        self.channel_order = str(self.channel_order).upper()
        if self.channel_order not in ("RGB", "BGR"):
            raise UserError(f"model card: channel_order must be RGB or BGR, not {self.channel_order!r}")
        if self.head not in HEADS:
            raise UserError(f"model card: head must be one of {', '.join(HEADS)}, not {self.head!r}")
        if not _is_int(self.index) or self.index < 0:
            raise UserError(f"model card: index must be a whole number >= 0, got {self.index!r}")
        self.index = int(self.index)
        if self.threshold is None:
            self.threshold = 0.0 if self.head == "logit" else 0.5
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not math.isfinite(self.threshold):
            raise UserError(f"model card: threshold must be a finite number, got {self.threshold!r}")
        self.threshold = float(self.threshold)
        if self.head != "logit" and not 0.0 < self.threshold < 1.0:
            raise UserError(f"model card: a {self.head} head gives probabilities; threshold {self.threshold} must be in (0, 1)")

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.crop_box if self.crop_box is not None else CROP_PRESETS[self.crop]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


MIN_INPUT_SIDE, MAX_INPUT_SIDE = 8, 4096  # a model input outside this is a typo, not a face classifier


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        value = [value] * 3
    if isinstance(value, str):
        value = value.strip("[]() ").split(",")
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise UserError(f"model card: {name} must be one number or three (R, G, B), got {value!r}")
    return out


CARD_KEYS = tuple(f.name for f in fields(ModelCard))


def load_card(path: str | Path | None = None, **overrides: Any) -> ModelCard:
    """Read a model card (TOML or YAML); ``overrides`` (CLI flags) win over the
    file. None values in ``overrides`` are ignored."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"model card not found: {path}")
        data = read_record(path, "model card", "yaml" if path.suffix.lower() in (".yaml", ".yml") else "toml") or {}
        if not isinstance(data, dict):
            raise UserError(f"model card {path}: expected a table of keys")
    if isinstance(data.get("factory"), str) and is_path_spec(data["factory"]) and overrides.get("factory") is None:
        raise UserError(f"model card {path}: factory {data['factory']!r} names a file; a card may only name an installed "
                        "package's network (package.module:Class)",
                        hint="Name the file yourself if you trust it: --factory path/to/nets.py:Class.")
    data.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(data) - set(CARD_KEYS))
    if unknown:
        raise UserError(f"model card: unknown key(s) {', '.join(unknown)}", hint=f"Known keys: {', '.join(CARD_KEYS)}.")
    return ModelCard(**data)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Classifier:
    """A model wrapped with its card. ``decision_score`` is the one verb."""

    model: Callable[[torch.Tensor], Any]
    card: ModelCard
    kind: str  # "torchscript" | "module" | "onnx"
    differentiable: bool = True
    path: str | None = None
    sha256: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # "fp32", or autocast in "bf16"/"fp16" around the model (iceaudit.precision); an ONNX
    # graph runs in the types it was exported with, whatever this says
    precision: str = "fp32"
    # While an audit runs: an `iceaudit.compiling.Compiler` (--compile; not for ONNX), and the
    # memory format of the model's input ("contiguous" or "channels_last", iceaudit.memory_format)
    compiler: Any = None
    memory_format: str = "contiguous"

    @property
    def threshold(self) -> float:
        return float(self.card.threshold)

    @property
    def name(self) -> str:
        return self.card.name

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Generator images [N, 3, R, R] in [-1, 1] -> the model's input."""
        card = self.card
        x = images.clamp(-1, 1)
        r_h, r_w = x.shape[-2:]
        top, left, h, w = card.box
        if (top, left, h, w) != (0.0, 0.0, 1.0, 1.0):
            t0, l0 = round(top * r_h), round(left * r_w)
            x = x[..., t0:t0 + max(1, round(h * r_h)), l0:l0 + max(1, round(w * r_w))]
        size = card.input_size or (r_h, r_w)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode=card.resize, align_corners=False, antialias=True)
        lo, hi = card.value_range
        x = lo + (x + 1) * (0.5 * (hi - lo))
        if card.channel_order == "BGR":
            x = x.flip(1)
        mean, std = card.mean, card.std  # in the model's channel order
        if mean != (0.0, 0.0, 0.0) or std != (1.0, 1.0, 1.0):
            m = torch.tensor(mean, dtype=x.dtype, device=x.device)[None, :, None, None]
            s = torch.tensor(std, dtype=x.dtype, device=x.device)[None, :, None, None]
            x = (x - m) / s
        return x

    def decision_score(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, R, R] in [-1, 1] at generator resolution -> scores [N];
        ``score > threshold`` means positive. Differentiable when the model is."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"decision_score expects images [N, 3, H, W], got {tuple(images.shape)}")
        x = self.preprocess(images.to(self.device))
        if self.memory_format == "channels_last" and self.kind != "onnx":
            x = x.contiguous(memory_format=torch.channels_last)
        model = self.model
        if self.compiler is not None and self.kind != "onnx":
            model = self.compiler.wrap(self.model, None, "classifier")
        try:
            with autocast(x.device.type, self.precision if self.kind != "onnx" else "fp32"):
                out = model(x)
        except (UserError, torch.cuda.OutOfMemoryError):  # out of memory: the caller halves its batch
            raise
        except Exception as err:  # noqa: BLE001 - a model failing on our input is a card problem
            first = brief(err)
            raise UserError(
                f"classifier {self.name!r} failed on input of shape {tuple(x.shape)}: {first}",
                hint="Check input_size (and crop) in the model card: they must match what the model was trained on.",
            ) from None
        score = self._head(out, n=x.shape[0])
        bad = ~torch.isfinite(score.detach())
        if bad.any():
            raise UserError(
                f"classifier {self.name!r} returned {int(bad.sum())} non-finite (NaN/inf) score(s) "
                f"out of {score.numel()}: the model or its weights are broken, or the input scaling "
                "(value_range, mean, std) is wrong"
            )
        return score

    def _head(self, out: Any, n: int) -> torch.Tensor:
        card = self.card
        if not isinstance(out, torch.Tensor):
            raise UserError(
                f"classifier {self.name!r} returns {type(out).__name__}, not a tensor: "
                "iceaudit needs a model whose output is one tensor [N] or [N, K]"
            )
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or out.shape[0] != n:
            raise UserError(
                f"classifier {self.name!r} output has shape {tuple(out.shape)} for a batch of {n}; "
                f"a {card.head} head needs [N] or [N, K]"
            )
        k = out.shape[1]
        if card.index >= k:
            raise UserError(
                f"classifier {self.name!r} has {k} output(s) but the card asks for {card.head} index {card.index}"
            )
        out = out.float()
        if card.head == "logit":
            return out[:, card.index]
        if card.head == "sigmoid":
            return torch.sigmoid(out[:, card.index])
        if k < 2:
            raise UserError(
                f"classifier {self.name!r} has 1 output: a softmax head needs at least 2 classes (use head = \"sigmoid\" or \"logit\")"
            )
        return torch.softmax(out, dim=1)[:, card.index]

    def validate(self, resolution: int) -> None:
        """Run two blank images of the generator's resolution through the model:
        wrong input size, bad output shape and non-finite scores surface here,
        before any audit work."""
        try:
            with torch.no_grad():
                self.decision_score(torch.zeros(2, 3, resolution, resolution, device=self.device))
        except torch.cuda.OutOfMemoryError:
            raise UserError(f"out of GPU memory running the classifier on two {resolution} px images",
                            hint="Free the GPU (another process holds it?), or run with --device cpu.") from None


def load_classifier(path: str | Path, card: ModelCard | None = None, device: torch.device | str = "cpu",
                    trust: bool = False) -> Classifier:
    """A classifier file and its card -> Classifier.

    Args:
        path: an ``.onnx`` file (onnxruntime), a state dict (with ``card.factory``), or a
            TorchScript file. TorchScript runs its own code, so it is loaded only when
            `trust` is set (or ICEAUDIT_TRUST_CLASSIFIER=1) or it ships with iceaudit
            (see `iceaudit.audit.trust`).
        card: preprocessing and output head; default: a ModelCard with its defaults.
        device: where the model runs (ONNX always runs on the CPU).
        trust: the user trusts the file's source: run TorchScript, call any factory.
    """
    card = card or ModelCard()
    device = torch.device(device)
    path = Path(path)
    if not path.exists():
        raise UserError(f"classifier not found: {path}")
    if not path.is_file():
        raise UserError(f"classifier {path} is not a file")
    digest = sha256_file(path)
    if path.suffix.lower() == ".onnx":
        model = _OnnxModel(path)
        return Classifier(model, card, "onnx", differentiable=False, path=str(path), sha256=digest, device=torch.device("cpu"))
    if card.factory:
        model = _module_from_factory(card.factory, path, device, trust)
        kind = "module"
    else:
        check_runnable(path, trust)
        try:
            model = torch.jit.load(str(path), map_location=device)
        except Exception as err:  # noqa: BLE001
            raise UserError(
                f"classifier {path} is not a TorchScript model ({brief(err)})",
                hint=(
                    "Pass a file saved with torch.jit.save; for a state dict also give the network's "
                    "constructor with --factory package.module:function (or `factory` in the card); "
                    "for ONNX use a .onnx file."
                ),
            ) from None
        kind = "torchscript"
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Classifier(model, card, kind, differentiable=True, path=str(path), sha256=digest, device=device)


def _module_from_factory(spec: str, weights: Path, device: torch.device, trust: bool) -> torch.nn.Module:
    factory = resolve_factory(spec, trusted=trust or trust_from_env())
    try:
        model = factory()
    except Exception as err:  # noqa: BLE001
        raise UserError(f"factory {spec!r} failed when called with no arguments: {err}") from None
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - includes refused pickles
        first = brief(err)
        raise UserError(f"classifier weights {weights} are not a readable state dict ({first})",
                        hint="Save them with torch.save(model.state_dict(), path).") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"classifier weights {weights} do not hold a state dict (name -> tensor)")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"classifier weights {weights} do not fit the network from {spec!r}: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.to(device)


class _OnnxModel:
    """onnxruntime session as a callable on torch tensors (no gradients)."""

    def __init__(self, path: Path | bytes) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("reading ONNX classifiers needs onnxruntime", hint="pip install 'iceaudit[onnx]'") from None
        if isinstance(path, bytes):
            self.model_bytes, path = path, "<bytes>"
        else:
            self.model_bytes = Path(path).read_bytes()  # kept: a worker process rebuilds the session from it
        try:
            self.session = ort.InferenceSession(self.model_bytes, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001
            raise UserError(f"classifier {path} is not a readable ONNX model ({err})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def eval(self) -> "_OnnxModel":
        return self

    def parameters(self):
        return iter(())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().float().numpy()
        step = self.fixed_batch or len(arr)
        outs = [self.session.run(None, {self.input_name: arr[i:i + step]})[0] for i in range(0, len(arr), step)]
        import numpy as np

        return torch.from_numpy(np.concatenate(outs)).to(x.device)


def wrap_classifier(model: Callable[[torch.Tensor], Any], card: ModelCard | None = None,
                    device: torch.device | str = "cpu") -> Classifier:
    """An in-memory model (an ``nn.Module`` or any tensor → tensor callable) -> Classifier.

    What a notebook holds: no file, so the provenance hash is taken over the module's
    state dict (parameters and buffers, in order) and is ``None`` for a plain callable.

    Args:
        model: maps preprocessed images [N, 3, H, W] (as the card says) to logits [N] or [N, K].
        card: preprocessing and output head; default: a ModelCard with its defaults.
        device: where the model runs (a module is moved there).
    """
    card = card or ModelCard()
    device = torch.device(device)
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        h = hashlib.sha256()
        for key, value in model.state_dict().items():
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        kind = "torchscript" if isinstance(model, torch.jit.ScriptModule) else "module"
        return Classifier(model, card, kind, differentiable=True, path=None, sha256=h.hexdigest(), device=device)
    if not callable(model):
        raise UserError(f"classifier must be a file path, an nn.Module or a callable, got {type(model).__name__}")
    return Classifier(model, card, "callable", differentiable=True, path=None, sha256=None, device=device)
