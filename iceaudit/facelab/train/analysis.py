"""Training of FaceLab's landmark regressor and face parser on renders."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from iceaudit.facelab.analysis import NET_RES, LandmarkNet, ParserNet, evaluate_on_renders
from iceaudit.facelab.asset_files import ASSETS, TRAIN_SEED_BASE, save_asset
from iceaudit.facelab.factors import sample_factors
from iceaudit.facelab.render import LABEL_NAMES, LANDMARK_NAMES, render
from iceaudit.facelab.train.loop import TrainConfig, train_loop

_DATA: dict = {}


def training_set(n: int, seed: int):
    """`n` renders at 64 px from the training seed range (cached in memory per process)."""
    key = (n, seed)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = render(sample_factors(n, TRAIN_SEED_BASE + seed), NET_RES)
    return _DATA[key]


def _batch(step: int, batch: int, seed: int, n_train: int):
    data = training_set(n_train, seed)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(len(data), (batch,), generator=gen)
    return data.images[idx], data.labels[idx], data.landmarks[idx]


def train_landmarks(steps: int = 1000, batch: int = 32, lr: float = 1e-3, seed: int = 0,
                    run_dir: Path = Path("runs/facelab-landmarks"), out_dir: Path = ASSETS,
                    progress=None, n_train: int = 6000, threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = LandmarkNet()
    model.mean.copy_(training_set(n_train, seed).landmarks.mean(0))

    def loss_fn(m, step):
        images, _, landmarks = _batch(step, batch, seed, n_train)
        pred = m(images)
        err = (pred.detach() - landmarks).norm(dim=-1)
        return F.smooth_l1_loss(pred, landmarks, beta=0.5), {"err_px": round(float(err.mean()), 3)}

    cfg = TrainConfig(steps=steps, batch=batch, lr=lr, seed=seed, run_dir=Path(run_dir), threads=threads)
    train_loop(model, loss_fn, cfg, progress)
    metrics = evaluate_on_renders(landmarker=model)
    meta = {"kind": "LandmarkNet", "config": model.config(), "input": "images [N,3,R,R] in [-1,1], RGB",
            "output": "landmarks [N,35,2] (x, y) in pixels of the input resolution",
            "landmark_names": list(LANDMARK_NAMES), "trained": {"steps": steps, "batch": batch, "lr": lr,
                                                                 "seed": seed},
            "command": f"iceaudit facelab train-landmarks --steps {steps} --batch {batch} --seed {seed} "
                       f"--n-train {n_train}",
            "training_set": {"n": n_train, "factor_seed": TRAIN_SEED_BASE + seed},
            "held_out_renders": metrics}
    save_asset(model, "landmarks", meta, out_dir)
    return meta


CLASS_WEIGHTS = torch.tensor([0.5, 0.5, 0.5, 2.0, 2.0, 1.5, 2.0, 4.0, 3.0])  # LABEL_NAMES order


def train_parser(steps: int = 500, batch: int = 24, lr: float = 3e-3, seed: int = 0,
                 run_dir: Path = Path("runs/facelab-parser"), out_dir: Path = ASSETS, progress=None,
                 n_train: int = 6000, threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = ParserNet()

    def loss_fn(m, step):
        images, labels, _ = _batch(step, batch, seed, n_train)
        logits = m(images)
        loss = F.cross_entropy(logits, labels.long(), weight=CLASS_WEIGHTS)
        acc = (logits.detach().argmax(1) == labels).float().mean()
        return loss, {"pixel_acc": round(float(acc), 4)}

    cfg = TrainConfig(steps=steps, batch=batch, lr=lr, seed=seed, run_dir=Path(run_dir), threads=threads)
    train_loop(model, loss_fn, cfg, progress)
    metrics = evaluate_on_renders(parser=model)
    meta = {"kind": "ParserNet", "config": model.config(), "input": "images [N,3,R,R] in [-1,1], RGB",
            "output": "logits [N,9,R,R] over label_names", "label_names": list(LABEL_NAMES),
            "trained": {"steps": steps, "batch": batch, "lr": lr, "seed": seed},
            "command": f"iceaudit facelab train-parser --steps {steps} --batch {batch} --seed {seed} "
                       f"--n-train {n_train}",
            "training_set": {"n": n_train, "factor_seed": TRAIN_SEED_BASE + seed},
            "held_out_renders": metrics}
    save_asset(model, "parser", meta, out_dir)
    return meta
