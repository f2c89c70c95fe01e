"""Print the FaceLab factor reader's and attribute estimators' held-out accuracy (docs/facelab.md).

    python benchmarks/reader_table.py

Reads the figures the training commands stored in iceaudit/facelab/assets/*.json:
R² and mean absolute error per factor on 512 held-out renders and on 512 demo-generator
samples G(z) against phi(z) (seed 11, never trained on); then each net's parameter count.
"""
from __future__ import annotations

import json
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "iceaudit" / "facelab" / "assets"


def main() -> None:
    print("| net | factor | R² renders | R² G(z) | MAE renders | MAE G(z) |")
    print("|---|---|---:|---:|---:|---:|")
    for name in ("reader", "age_estimator", "beard_estimator"):
        path = ASSETS / f"{name}.json"
        if not path.is_file():
            continue
        held = json.loads(path.read_text())["held_out"]
        for f, r in held["renders"].items():
            g = held.get("generator", {}).get(f, {})
            print(f"| {name} | `{f}` | {r['r2']:.3f} | {g.get('r2', float('nan')):.3f} | {r['mae']:.3f} | "
                  f"{g.get('mae', float('nan')):.3f} |")
    from iceaudit.facelab.reader import load_reader

    sizes = {name: sum(p.numel() for p in load_reader(asset=name).parameters())
             for name in ("reader", "age_estimator", "beard_estimator") if (ASSETS / f"{name}.json").is_file()}
    print("\nParameters: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))


if __name__ == "__main__":
    main()
