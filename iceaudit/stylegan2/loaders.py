"""One entry point for every generator file: `load_generator(path_or_name)`.

The format is recognised by content, not by suffix (a PNG renamed `.pkl` is
reported as a PNG):

- NVIDIA network pickle (`.pkl`)          -> nvidia_pickle (restricted unpickler)
- PyTorch checkpoint, zip or legacy (`.pt`) -> rosinality (weights_only)
- safetensors / JSON (`.safetensors`, `.json`) -> native
- `"demo"`                                -> the shipped FaceLab generator

Every loaded generator is in eval mode, gradients off, on `device`, with a
`provenance` dict (format, path, notes).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from iceaudit.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from iceaudit.stylegan2.networks import Generator

DEMO_NAME = "demo"
DEMO_PATH = Path(__file__).resolve().parent.parent / "facelab" / "assets" / "demo_generator.safetensors"



def shipped_generator_for(fingerprint: str) -> str | None:
    """The name of the shipped generator with this fingerprint (``"demo"``), or None.

    Reads the fingerprint recorded beside the shipped weights (the native JSON), so
    nothing is loaded; the bank check re-verifies it on the loaded weights.
    """
    import json

    try:
        recorded = json.loads(DEMO_PATH.with_suffix(".json").read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None
    return DEMO_NAME if recorded == fingerprint else None


# The pickled magic number every legacy (non-zip) torch.save file starts with.
_TORCH_LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

_SIGNATURES = [
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"PAR1", "a parquet file"),
]


def resolve_device(device: Any) -> torch.device:
    """'auto' -> cuda when available, else cpu; refuses an unavailable cuda."""
    if isinstance(device, torch.device):
        return device
    name = str(device or "cpu").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {device!r}; use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was requested but no CUDA GPU is available", hint="Use --device cpu or auto.")
    return dev


def sniff_format(path: Path) -> str:
    """'nvidia-pickle', 'torch', 'native' or a UserError saying what it is."""
    with path.open("rb") as f:
        head = f.read(64)
    if not head:
        raise UserError(f"{path} is empty")
    if head.startswith(b"PK\x03\x04"):
        return "torch"  # torch.save's zip format
    if head.startswith(b"\x80"):
        return "torch" if _TORCH_LEGACY_MAGIC in head[:16] else "nvidia-pickle"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "native"  # safetensors: u64 header length, then a JSON header
    if head.lstrip().startswith(b"{"):
        return "native"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            raise UserError(f"{path} is not a generator checkpoint: it is {what}")
    kind = "a text file" if _looks_like_text(head) else "an unrecognised binary file"
    raise UserError(f"{path} is not a generator checkpoint: it is {kind}",
                    hint="Expected an NVIDIA .pkl, a rosinality .pt, or an iceaudit .safetensors + .json pair.")


def _looks_like_text(head: bytes) -> bool:
    import codecs

    try:  # final=False: a multi-byte character cut at the end of `head` is fine
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return "\x00" not in text


def _demo_path() -> Path:
    if not DEMO_PATH.is_file():
        raise UserError(
            f"the demo generator is not built yet (expected {DEMO_PATH})",
            hint="Build it with `make demo-world` (iceaudit facelab train-generator, then train-knobs), or pass --generator PATH.",
        )
    return DEMO_PATH


def load_generator(path_or_name: str | Path, device: Any = "cpu") -> Generator:
    """Load a StyleGAN2 generator from a file, or the shipped `"demo"`."""
    dev = resolve_device(device)
    path = Path(path_or_name).expanduser()
    if str(path_or_name) == DEMO_NAME and not path.is_file():
        path = _demo_path()
    if not path.exists() and not path.suffix and path.with_name(path.name + ".safetensors").is_file():
        path = path.with_name(path.name + ".safetensors")  # native pair named by its stem
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a generator file")
    kind = sniff_format(path)
    if kind == "nvidia-pickle":
        from iceaudit.stylegan2.nvidia_pickle import load_nvidia_pickle

        G = load_nvidia_pickle(path, device=dev)
    elif kind == "torch":
        from iceaudit.stylegan2.rosinality import load_rosinality

        G = load_rosinality(path, device=dev)
    else:
        from iceaudit.stylegan2.native import load_native

        G = load_native(path, device=dev)
    return G


def save_native(G: Generator, path: str | Path, metadata: dict | None = None) -> tuple[Path, Path]:
    """Write G as `<path>.safetensors` + `<path>.json` (see native.py)."""
    from iceaudit.stylegan2.native import save_native as _save

    meta = {"source": getattr(G, "provenance", {}), **(metadata or {})}
    return _save(G, path, meta)


def save_rosinality(G: Generator, path: str | Path) -> Path:
    """Write G as a rosinality checkpoint (`{'g_ema', 'latent_avg'}`, plain tensors)."""
    from iceaudit.atomic import atomic_path
    from iceaudit.stylegan2.rosinality import official_to_rosinality

    ckpt = official_to_rosinality(G)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)
