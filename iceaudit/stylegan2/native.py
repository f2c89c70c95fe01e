"""iceaudit's native generator format: `<name>.safetensors` + `<name>.json`.

- `<name>.safetensors`: the official-layout state dict (float32), no pickles.
  Its header metadata repeats the config and fingerprint, so the weights
  file alone is enough to load.
- `<name>.json`: {"format": "iceaudit-generator", "format_version": 1,
  "init_kwargs": Generator kwargs (stylegan2-ada-pytorch form),
  ["architecture": "stylegan3", with format_version 2, for a StyleGAN3's kwargs],
  "fingerprint": sha256 of the canonical weights, "metadata": free-form
  (source file and format, notes)}.

Loading rebuilds the generator and refuses it unless its fingerprint equals
the recorded one (a modified or mismatched weights file).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from iceaudit.atomic import atomic_path
from iceaudit.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from iceaudit.stylegan2.networks import Generator

FORMAT = "iceaudit-generator"
FORMAT_VERSION = 2  # 2: an `architecture` key (StyleGAN3); StyleGAN2 files stay version 1


def native_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) for `x`, `x.safetensors` or `x.json`."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_native(G: Generator, path: str | Path, metadata: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write G as `<path>.safetensors` + `<path>.json`, each atomically."""
    from safetensors.torch import save_file

    from iceaudit.stylegan2.assemble import architecture_of

    weights, config_path = native_paths(path)
    fingerprint = G.fingerprint()
    architecture = architecture_of(G)
    version = 1 if architecture == "stylegan2" else 2  # a reader that knows only StyleGAN2 asks to be upgraded
    config = {
        "format": FORMAT,
        "format_version": version,
        **({} if architecture == "stylegan2" else {"architecture": architecture}),
        "init_kwargs": G.init_kwargs,
        "fingerprint": fingerprint,
        "metadata": dict(metadata or {}),
    }
    try:
        config_text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise UserError(f"generator metadata is not JSON-serialisable: {exc}") from exc
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in G.state_dict().items()}
    header = {"format": FORMAT, "format_version": str(version),
              **({} if architecture == "stylegan2" else {"architecture": architecture}),
              "init_kwargs": json.dumps(G.init_kwargs), "fingerprint": fingerprint}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    with atomic_path(config_path) as tmp:
        tmp.write_text(config_text)
    return weights, config_path


MAX_CONFIG_BYTES = 16 << 20


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where} is not valid JSON ({exc})") from None
    except RecursionError:
        raise UserError(f"{where} is nested too deeply to be a generator config") from None


def _read_config(config_path: Path, weights: Path) -> dict[str, Any]:
    from safetensors import safe_open

    if config_path.is_file():
        if config_path.stat().st_size > MAX_CONFIG_BYTES:
            raise UserError(f"{config_path}: {config_path.stat().st_size} bytes is too large for a generator config")
        config = _json(config_path.read_bytes(), str(config_path))
    else:  # weights file alone: its header carries the config
        with safe_open(str(weights), framework="pt") as f:
            header = f.metadata() or {}
        if header.get("format") != FORMAT:
            raise UserError(f"{weights} has no generator config: expected {config_path.name} beside it")
        version = str(header.get("format_version", "0"))
        config = {"format": FORMAT, "format_version": int(version) if version.isdigit() else version,
                  "architecture": header.get("architecture", "stylegan2"),
                  "init_kwargs": _json(header.get("init_kwargs", "null").encode(), f"{weights} (init_kwargs)"),
                  "fingerprint": header.get("fingerprint"), "metadata": {}}
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{config_path} is not an iceaudit generator config (no \"format\": \"{FORMAT}\")")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"{config_path} has format_version {version!r}; this iceaudit reads up to {FORMAT_VERSION}",
                        hint="Upgrade iceaudit to read this file.")
    for key in ("init_kwargs", "fingerprint"):
        if key not in config:
            raise UserError(f"{config_path} lacks {key!r}")
    return config


def load_native(path: str | Path, device: Any = "cpu") -> Generator:
    """The generator stored at `path` (`x`, `x.safetensors` or `x.json`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from iceaudit.stylegan2.assemble import build_generator

    weights, config_path = native_paths(path)
    if not weights.is_file():
        beside = f" (the weights that {config_path.name} describes)" if Path(path).suffix == ".json" else ""
        raise UserError(f"no such file: {weights}{beside}")
    try:
        config = _read_config(config_path, weights)
        state = load_file(str(weights), device="cpu")
    except SafetensorError as exc:
        raise UserError(f"{weights} is not a readable safetensors file (truncated or corrupt: {exc})") from exc
    architecture = config.get("architecture", "stylegan2")
    if not isinstance(architecture, str):
        raise UserError(f"{config_path}: \"architecture\" must be a name such as \"stylegan3\"")
    G = build_generator(config["init_kwargs"], state, source=str(weights), device=device, architecture=architecture)
    found = G.fingerprint()
    if found != config["fingerprint"]:
        raise UserError(f"{weights} does not match its recorded fingerprint: the weights were modified "
                        f"or belong to another generator (recorded {str(config['fingerprint'])[:12]}…, "
                        f"found {found[:12]}…)")
    G.provenance = {"format": "native", "path": str(weights), "notes": [],
                    "metadata": config.get("metadata", {})}
    return G
