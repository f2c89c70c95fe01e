"""FaceLab's factor reader: image -> the 19 true factors, for validating subspaces.

A bank subspace is meant to move one semantic. Its own criterion says it moves
what the criterion measures; only the true factors say whether that is the
intended semantic. Renders carry exact factors, so a small CNN trained on
renders reads them back from any FaceLab-like image (renders or demo-generator
samples). It is a validation instrument only: no criterion and no audit
reads it.

    reader = load_reader()
    values = reader.read(images)   # {factor name: [N]} in factor units

Each factor is regressed on its range scaled to [0, 1]; the cyclic background
hue is regressed as a point on the unit circle and read back as an angle in
turns. Differences of a cyclic factor must be wrapped (`wrap_difference`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from iceaudit.facelab.analysis import NET_RES, _conv, _to_net_res
from iceaudit.facelab.factors import FACTOR_NAMES, FACTORS, HIGH, LOW, sample_factors
from iceaudit.errors import UserError
from iceaudit.facelab.render import render
from iceaudit.facelab.asset_files import ASSETS, load_asset

if TYPE_CHECKING:  # annotations only
    from iceaudit.stylegan2.networks import Generator


EVAL_SEED = 11
CYCLIC = tuple(f.name for f in FACTORS if f.cyclic)


def _split(names: tuple[str, ...]) -> tuple[list[int], list[int]]:
    idx = [FACTOR_NAMES.index(n) for n in names]
    return [i for i in idx if not FACTORS[i].cyclic], [i for i in idx if FACTORS[i].cyclic]


def num_outputs(names: tuple[str, ...] = FACTOR_NAMES) -> int:
    lin, hue = _split(names)
    return len(lin) + 2 * len(hue)


def encode(values: torch.Tensor, names: tuple[str, ...] = FACTOR_NAMES) -> torch.Tensor:
    """Factor tensor [N, 19] -> regression targets [N, num_outputs(names)]."""
    lin, hue = _split(names)
    y = (values[:, lin] - LOW[lin]) / (HIGH - LOW)[lin]
    ang = 2 * math.pi * values[:, hue]
    return torch.cat([y, torch.cos(ang), torch.sin(ang)], 1)


def decode(out: torch.Tensor, names: tuple[str, ...] = FACTOR_NAMES) -> dict[str, torch.Tensor]:
    """Regression outputs -> {factor name: [N]} in factor units (cyclic ones in turns, [0, 1))."""
    lin, hue = _split(names)
    y = out[:, :len(lin)] * (HIGH - LOW)[lin] + LOW[lin]
    values = {FACTOR_NAMES[i]: y[:, k] for k, i in enumerate(lin)}
    for k, i in enumerate(hue):
        c, s = out[:, len(lin) + k], out[:, len(lin) + len(hue) + k]
        values[FACTOR_NAMES[i]] = torch.atan2(s, c).div(2 * math.pi).remainder(1.0)
    return {name: values[name] for name in names}


def wrap_difference(name: str, d: torch.Tensor) -> torch.Tensor:
    """A factor difference, wrapped into [-0.5, 0.5) turns for cyclic factors."""
    return (d + 0.5).remainder(1.0) - 0.5 if name in CYCLIC else d


class FactorReader(nn.Module):
    """CNN encoder -> regression of the factors `names` (see `encode`)."""

    def __init__(self, width: int = 24, hidden: int = 192, names: tuple[str, ...] | list[str] = FACTOR_NAMES):
        super().__init__()
        w = width
        self.width, self.hidden, self.names = width, hidden, tuple(names)
        self.features = nn.Sequential(
            _conv(3, w), _conv(w, w, 2),  # 32
            _conv(w, 2 * w), _conv(2 * w, 2 * w, 2),  # 16
            _conv(2 * w, 4 * w), _conv(4 * w, 4 * w, 2),  # 8
            _conv(4 * w, 4 * w, 2),  # 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, hidden), nn.LeakyReLU(0.1),
                                  nn.Linear(hidden, num_outputs(self.names)))

    def config(self) -> dict:
        return {"width": self.width, "hidden": self.hidden, "names": list(self.names)}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(_to_net_res(images)))

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
        """{factor name: [N]} for images [N, 3, R, R] in [-1, 1]."""
        out = torch.cat([self(images[i:i + batch].float().clamp(-1, 1)) for i in range(0, len(images), batch)])
        return decode(out, self.names)


def factor_errors(read: dict[str, torch.Tensor], truth: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per factor: mean absolute error (factor units) and R² against the true factors."""
    out = {}
    for i, name in enumerate(FACTOR_NAMES):
        if name not in read:
            continue
        d = wrap_difference(name, read[name] - truth[:, i])
        var = float(truth[:, i].var()) if name not in CYCLIC else 1 / 12
        out[name] = {"mae": round(float(d.abs().mean()), 4), "r2": round(1 - float(d.pow(2).mean()) / var, 3)}
    return out


def evaluate_reader(reader: FactorReader, generator: Generator=None, n: int = 512, seed: int = EVAL_SEED) -> dict:
    """Errors on held-out renders and, with a generator, on G(z) against phi(z)."""
    factors = sample_factors(n, seed)
    result = {"renders": factor_errors(reader.read(render(factors, NET_RES).images), factors)}
    if generator is not None:
        from iceaudit.facelab.latent import phi, sample_z

        z = sample_z(n, seed)
        with torch.no_grad():
            imgs = torch.cat([generator(z[i:i + 64], None, noise_mode="const").float() for i in range(0, n, 64)])
        result["generator"] = factor_errors(reader.read(imgs), phi(z))
    return result


def rescore_on_generator(generator: Generator, assets: tuple[str, ...] = ("reader", "age_estimator", "beard_estimator"),
                         directory: Path = ASSETS) -> dict[str, dict]:
    """Re-measure each net's held-out errors on ``generator``'s samples and store them in its
    json (``held_out.generator``), e.g. after the demo generator changed under trained nets.
    `FactorTruth` reads these figures to decide which factors it reports."""
    out = {}
    for asset in assets:
        if not (directory / f"{asset}.json").is_file():
            continue
        model, meta = _load(asset, directory)
        meta["held_out"]["generator"] = evaluate_reader(model, generator)["generator"]
        meta["generator_fingerprint"] = generator.fingerprint()
        (directory / f"{asset}.json").write_text(json.dumps(meta, indent=2) + "\n")
        out[asset] = meta["held_out"]["generator"]
    return out


def _load(asset: str, directory: Path) -> tuple[FactorReader, dict]:
    weights, meta = load_asset(asset, directory)
    model = FactorReader(**meta["config"])
    model.load_state_dict(weights)
    return model.eval(), meta


def load_reader(directory: Path = ASSETS, asset: str = "reader") -> FactorReader:
    """The shipped factor reader, or ``asset="age_estimator"`` (eval mode, CPU)."""
    return _load(asset, directory)[0]


class FactorTruth:
    """The bank-validation `truth` hook: images -> {factor: [N]}, read by the shipped reader.

    Only factors the reader reads well on demo-generator samples are reported (held-out
    R² >= `min_r2` in reader.json; at 0.75 that leaves out nose width and jaw, which the
    demo generator draws too faintly to read back). `difference` wraps cyclic factors, so
    a walk across red in the background hue is a small change, not a full turn."""

    def __init__(self, directory: Path = ASSETS, min_r2: float = 0.75) -> None:
        self.reader, meta = _load("reader", directory)
        r2 = {k: v["r2"] for k, v in meta["held_out"]["generator"].items()}
        self.factors = [k for k in self.reader.names if r2.get(k, 0.0) >= min_r2]

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        values = self.reader.read(images)
        return {k: values[k] for k in self.factors}

    @staticmethod
    def difference(name: str, d: torch.Tensor) -> torch.Tensor:
        return wrap_difference(name, d)

    def scorer(self, name: str) -> nn.Module:
        """One linear factor as an image -> score module (traceable), e.g. the scorer of a FaceLab
        concept (`iceaudit bank add-concept --scorer`). Cyclic factors (hues) have no scalar score."""
        lin, _ = _split(self.reader.names)
        column = next((k for k, i in enumerate(lin) if FACTOR_NAMES[i] == name), None)
        if column is None:
            raise UserError(f"FaceLab factor {name!r} has no scalar score (the reader's linear factors: "
                            f"{', '.join(FACTOR_NAMES[i] for i in lin)})")
        return _Column(self.reader, column).eval()


class _Column(nn.Module):
    def __init__(self, reader: FactorReader, column: int) -> None:
        super().__init__()
        self.reader, self.column = reader, column

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.reader(images.clamp(-1, 1))[:, self.column]
