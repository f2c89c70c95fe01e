"""A small, resumable training loop shared by FaceLab's nets (CPU, seeded).

Every step draws a fresh batch of renders from a seed derived from the step
number, so a run is deterministic and resumes exactly from a checkpoint:
`<run_dir>/checkpoint.pt` (model + optimiser state, written with torch.save,
read with ``weights_only=True``) every `checkpoint_every` steps, a text log in
`<run_dir>/train.log`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch




@dataclass
class TrainConfig:
    steps: int
    batch: int
    lr: float
    seed: int
    run_dir: Path
    checkpoint_every: int = 100
    log_every: int = 25
    threads: int = 2


def train_loop(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, int], tuple[torch.Tensor, dict]],
               cfg: TrainConfig, progress: Callable[[int, dict], None] | None = None) -> torch.nn.Module:
    """Minimise `loss_fn(model, step)` with Adam and a cosine schedule; resume if a
    checkpoint exists in `cfg.run_dir`."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + torch.cos(torch.tensor(torch.pi * min(s, cfg.steps) / cfg.steps))).item() * 0.98 + 0.02)
    start = 0
    ckpt = cfg.run_dir / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = int(state["step"])
    log = (cfg.run_dir / "train.log").open("a")
    log.write(f"# start at step {start} of {cfg.steps}, batch {cfg.batch}, lr {cfg.lr}, seed {cfg.seed}\n")
    t0 = time.time()
    model.train()
    for step in range(start, cfg.steps):
        loss, stats = loss_fn(model, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            stats = {"step": step + 1, "loss": round(float(loss.detach()), 5), "s": round(time.time() - t0, 1), **stats}
            log.write(json.dumps(stats) + "\n")
            log.flush()
            if progress:
                progress(step + 1, stats)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step + 1}, ckpt)
    log.close()
    model.eval()
    return model
