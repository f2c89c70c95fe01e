"""Record what `run_baselines` really writes, as a small audit directory for the report tests.

Runs the Captum baselines, latent attribution, AttFind and the agreement on the
tiny world of the baseline tests (tests/baselines_world.py: a 16x16 style
generator and a probe classifier that reads one planted style channel), then
writes summary.json + figures/ with walk drivers for the four bank subspaces.
The drivers' numbers are made up (marked synthetic_fixture); the ``baselines``
entry and the figures are the function's real output. Regenerate with

    PYTHONPATH=. python tests/report/make_baselines_audit.py tests/data/report_baselines

(about a minute on one CPU core); the report tests read the committed copy.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baselines_world import (  # noqa: E402
    FixedParser, TinyStyleGenerator, channel_probe, s_subspace, sample_ws, tiny_bank, w_subspace,
)

from iceaudit.audit.baselines import run_baselines  # noqa: E402
from iceaudit.record import Driver, record_from_json, write_record  # noqa: E402
from iceaudit.record.codec import to_json  # noqa: E402

PLANTED = ("b8.conv1", 2)
# id, name, tags, walk slope (made up: the planted subspace drives the probe)
SUBSPACES = [("planted", "smile", ["smile"], 1.0), ("early", "face shape", ["face shape"], 0.1),
             ("w_dense", "hair colour", ["hair"], 0.4), ("w_plus", "eye size", ["eyes"], 0.05)]


def main(out: str) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out_dir = Path(out)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    G = TinyStyleGenerator()
    ws = sample_ws(G, 8)
    probe = channel_probe(G, ws, *PLANTED)
    bank = tiny_bank(G, [
        s_subspace(G, "planted", [PLANTED, ("b8.conv1", 5)], name="smile", tags=["smile"]),
        s_subspace(G, "early", [("b4.conv1", 3), ("b8.conv0", 1)], name="face shape", tags=["face shape"]),
        w_subspace(G, "w_dense", 1, tags=["hair"]),
        w_subspace(G, "w_plus", 2, space="W+", layers=[2, 3], tags=["eyes"]),
    ])
    drivers = [{"subspace": sid, "name": name, "tags": tags, "slope": slope, "ci_low": 0.8 * slope,
                "ci_high": 1.2 * slope, "flip_rate": min(1.0, slope / 2), "significant": slope > 0.2,
                "null_abs_slope": 0.08, "p_adjusted": 0.001 if slope > 0.2 else 0.5}
               for sid, name, tags, slope in SUBSPACES]
    baselines = run_baselines(probe, G, ws, bank, FixedParser(),
                              "saliency,ig_blur,feature_ablation,gradcam,latent,attfind", out_dir,
                              drivers=[Driver(**d) for d in drivers], threshold=0.0)
    write_record(record_from_json({"schema_version": 1,
        "classifier": {"name": "planted-channel probe (tiny test world)", "positive_class": "positive",
                       "threshold": 0.0},
        "generator": {"name": "TinyStyleGenerator (16 px, random weights)", "resolution": 16},
        "bank": {"name": "tiny", "subspaces": [{"id": sid, "name": name, "tags": tags, "unit": "1 style unit"}
                                               for sid, name, tags, _ in SUBSPACES]},
        "settings": {"n_samples": 8},
        "drivers": drivers,
        "baselines": to_json(baselines),
        "provenance": {"command": "PYTHONPATH=. python tests/report/make_baselines_audit.py " + out,
                       "synthetic_fixture": True},
    }, "baselines fixture"), out_dir / "summary.json")
    print(out_dir)


if __name__ == "__main__":
    main(sys.argv[1])
