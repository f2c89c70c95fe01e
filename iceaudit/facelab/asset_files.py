"""The trained FaceLab nets on disk: ``NAME.safetensors`` (weights) + ``NAME.json`` (config,
training record, held-out metrics) under ``iceaudit/facelab/assets/`` or a directory given."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from iceaudit.errors import UserError

ASSETS = Path(__file__).parent / "assets"
TRAIN_SEED_BASE = 1_000_000  # training batches use seeds >= this; evaluation uses small seeds


def save_asset(model: torch.nn.Module, name: str, meta: dict, directory: Path = ASSETS) -> Path:
    """Write `<name>.safetensors` (weights) and `<name>.json` (config, metrics, provenance)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(weights, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return directory / f"{name}.safetensors"


def load_asset(name: str, directory: Path = ASSETS) -> tuple[dict[str, torch.Tensor], dict]:
    w, j = directory / f"{name}.safetensors", directory / f"{name}.json"
    if not w.exists() or not j.exists():
        raise UserError(f"FaceLab asset {name!r} is missing ({w})",
                        hint=f"train it with `iceaudit facelab train-{name}`")
    return load_file(str(w)), json.loads(j.read_text())
