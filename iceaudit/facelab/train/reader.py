"""Training of FaceLab's factor reader and single-factor estimators on renders."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from iceaudit.facelab.analysis import NET_RES
from iceaudit.facelab.asset_files import ASSETS, TRAIN_SEED_BASE, save_asset
from iceaudit.facelab.factors import FACTOR_NAMES, sample_factors
from iceaudit.facelab.reader import FactorReader, encode, evaluate_reader
from iceaudit.facelab.render import render
from iceaudit.facelab.train.loop import TrainConfig, train_loop

_DATA: dict = {}


def _training_set(n: int, seed: int, names: tuple[str, ...]):
    key = (n, seed, names)
    if key not in _DATA:
        _DATA.clear()
        f = sample_factors(n, TRAIN_SEED_BASE + 500 + seed)
        _DATA[key] = (render(f, NET_RES).images, encode(f, names))
    return _DATA[key]


def train_reader(steps: int = 3000, batch: int = 64, lr: float = 2e-3, seed: int = 0, n_train: int = 20000,
                 run_dir: Path = Path("runs/facelab-reader"), out_dir: Path = ASSETS, progress=None,
                 threads: int = 2, generator=None, names: tuple[str, ...] = FACTOR_NAMES, width: int = 24,
                 asset: str = "reader") -> dict:
    """Train on renders; light pixel noise and blur stand in for the generator's artefacts.

    With ``names`` a subset it is a single-attribute estimator (e.g. FaceLab's age
    estimator, a criterion), written as `asset`."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    names = tuple(names)
    model = FactorReader(width=width, names=names)

    def loss_fn(m, step):
        images, target = _training_set(n_train, seed, names)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(len(images), (batch,), generator=gen)
        x = images[idx]
        blur = torch.rand(batch, 1, 1, 1, generator=gen) < 0.5
        x = torch.where(blur, F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1) * 0.5 + x * 0.5, x)
        x = x + 0.03 * torch.randn(x.shape, generator=gen)
        loss = F.mse_loss(m(x), target[idx])
        return loss, {}

    cfg = TrainConfig(steps=steps, batch=batch, lr=lr, seed=seed, run_dir=Path(run_dir), threads=threads)
    train_loop(model, loss_fn, cfg, progress)
    metrics = evaluate_reader(model, generator)
    meta = {"kind": "FactorReader", "config": model.config(), "input": "images [N,3,R,R] in [-1,1], RGB",
            "output": "factor regression (iceaudit.facelab.reader.decode)", "factor_names": list(names),
            "trained": {"steps": steps, "batch": batch, "lr": lr, "seed": seed},
            "command": ("iceaudit facelab train-reader" if asset == "reader" else
                        f"iceaudit facelab train-estimator {names[0]}")
                       + f" --steps {steps} --batch {batch} --seed {seed} --n-train {n_train}",
            "training_set": {"n": n_train, "factor_seed": TRAIN_SEED_BASE + 500 + seed},
            "held_out": metrics}
    save_asset(model, asset, meta, out_dir)
    return meta
