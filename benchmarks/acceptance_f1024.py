"""The acceptance run at real size: an NVIDIA-format config-f pickle, the FFHQ recipe built with
face-alignment's FAN and a BiSeNet parser, a ResNet-50-shaped classifier (TorchScript and ONNX)
with a CelebA-style card, `iceaudit audit`, the report — all random weights (no real weights can
be downloaded here), all through the installed CLI, with wall time and peak memory per stage.

    PYTHONPATH=. python benchmarks/acceptance_f1024.py --work runs/acceptance          # CPU: N = 8
    PYTHONPATH=. python benchmarks/acceptance_f1024.py --work runs/acc-gpu --device cuda --n 256 --faces 8

Stages: inputs (the pickle in the official structure, FAN and BiSeNet state dicts, label order
checked after loading, the classifier exported twice and checked to agree), bank (`iceaudit bank
build` with the FFHQ recipe; on CPU the JᵀJ is sketched: `--jtj sketch --rank`), audit, report.
Writes WORK/acceptance.json with the per-stage figures. `--resolution` and `--channel-base`
shrink the generator for a quick check of the script itself.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from resnet50 import random_resnet50  # noqa: E402
from stylegan2_io_fakes import training_snapshot, write_pickle  # noqa: E402 - the official pickle structure

CARD = """name = "resnet50-celeba-smiling"
positive_class = "smiling"
input_size = 224
crop = "celeba"
value_range = [0.0, 1.0]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
head = "sigmoid"
index = 31
threshold = 0.5
"""


def run(stage: str, cmd: list[str], log: dict) -> None:
    """Run one CLI stage; record its wall seconds and the child's peak resident memory."""
    print(f"== {stage}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    log[stage] = {"seconds": round(seconds, 1), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2), "exit": code}
    print(f"   {stage}: {seconds:.1f} s, peak RSS {usage.ru_maxrss / 2**20:.2f} GiB, exit {code}", flush=True)
    if code != 0:
        raise SystemExit(f"stage {stage} failed (exit {code})")


def write_inputs(work: Path, args) -> dict:
    from iceaudit.criteria.bisenet import BiSeNetParser, label_order
    from iceaudit.criteria.fan import FanLandmarks
    from iceaudit.stylegan2.loaders import load_generator
    from iceaudit.stylegan2.networks import Generator

    t0 = time.perf_counter()
    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=args.resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 8},
                  synthesis_kwargs={"channel_base": args.channel_base, "channel_max": 512}).eval()
    write_pickle(training_snapshot(G), work / "G.pkl")
    assert load_generator(str(work / "G.pkl")).fingerprint() == G.fingerprint(), "pickle round trip"

    torch.save(FanLandmarks.random(num_modules=4).net.state_dict(), work / "fan.pth")
    torch.save(BiSeNetParser.random("bisenet").net.state_dict(), work / "bisenet.pth")
    parser = BiSeNetParser.from_file(work / "bisenet.pth", order="bisenet")
    assert list(parser.labels) == list(label_order("bisenet")), "label order after loading"
    FanLandmarks.from_file(work / "fan.pth")

    net = random_resnet50()
    probe = torch.rand(2, 3, 224, 224)
    torch.jit.trace(net, probe).save(str(work / "resnet50.pt"))
    torch.onnx.export(net, probe, str(work / "resnet50.onnx"), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    (work / "resnet50.toml").write_text(CARD)
    import onnxruntime as ort

    onnx_out = ort.InferenceSession(str(work / "resnet50.onnx")).run(None, {"x": probe.numpy()})[0]
    with torch.no_grad():
        gap = float((torch.from_numpy(onnx_out) - torch.jit.load(str(work / "resnet50.pt"))(probe)).abs().max())
    assert gap < 1e-3, f"ONNX and TorchScript disagree by {gap}"
    return {"seconds": round(time.perf_counter() - t0, 1), "onnx_vs_torchscript_max_abs": gap,
            "generator_fingerprint": G.fingerprint()}


def write_recipe(work: Path, args) -> Path:
    from iceaudit.bank.recipe import RECIPE_DIR

    text = (RECIPE_DIR / "ffhq.toml").read_text()
    recipe = tomllib.loads(text)
    bank = recipe["bank"]
    overrides = {"faces": args.faces, "calibration_faces": args.faces * 4, "validation_faces": args.faces * 4,
                 "jtj_method": args.jtj, "jtj_rank": args.rank, "jtj_chunk": args.chunk,
                 # the valid-range bound at a reduced count too (the recipe's 1,024 faces + walks are GPU work)
                 "manifold_fit_faces": args.manifold_faces, "manifold_held_out_faces": max(4, args.manifold_faces // 2),
                 "manifold_walk_faces": max(2, args.manifold_faces // 8), "manifold_rank": max(1, args.manifold_faces // 4),
                 "manifold_steps_per_side": 2}
    lines = [f"{k} = {json.dumps(v)}" for k, v in overrides.items()]
    head, rest = text.split("[bank]", 1)
    kept = "\n".join(line for line in rest.splitlines() if line.split("=")[0].strip() not in overrides or
                     line.startswith("["))
    out = work / "recipe.toml"
    out.write_text(head + "[bank]\n" + "\n".join(lines) + "\n" + kept + "\n")
    assert tomllib.loads(out.read_text())["bank"]["jtj_method"] == args.jtj and bank
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/acceptance")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--channel-base", type=int, default=32768)
    ap.add_argument("--n", type=int, default=8, help="audit faces")
    ap.add_argument("--faces", type=int, default=1, help="bank discovery faces (calibration and validation: 4×)")
    ap.add_argument("--jtj", default="sketch", choices=["fd", "exact", "sketch"])
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=2, help="images per JᵀJ pass (a 1024² reverse pass holds GBs)")
    ap.add_argument("--fan-size", type=int, default=256, help="FAN crop (256 for 2DFAN-4)")
    ap.add_argument("--parser-size", type=int, default=512, help="BiSeNet input (512 for 79999_iter.pth)")
    ap.add_argument("--manifold-faces", type=int, default=32, help="faces the valid-range bound is fitted on "
                    "(0: no valid ranges); half as many set its threshold, an eighth are walked")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--null", type=int, default=2)
    args = ap.parse_args()
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cli = [sys.executable, "-m", "iceaudit"]
    log: dict = {"args": vars(args), "torch": torch.__version__}
    log["inputs"] = write_inputs(work, args)
    recipe = write_recipe(work, args)
    run("bank", cli + ["bank", "build", "--generator", str(work / "G.pkl"), "--recipe", str(recipe),
                       "--landmarks", str(work / "fan.pth"), "--parser", str(work / "bisenet.pth"),
                       "--label-order", "bisenet", "--fan-size", str(args.fan_size),
                       "--parser-size", str(args.parser_size), "--keep-failing",
                       "--out", str(work / "bank")], log)
    run("audit", cli + ["audit", "--classifier", str(work / "resnet50.onnx"), "--card", str(work / "resnet50.toml"),
                        "--generator", str(work / "G.pkl"), "--bank", str(work / "bank"), "--n", str(args.n),
                        "--steps", str(args.steps), "--null", str(args.null), "--device", args.device,
                        "--baselines", "none", "--out", str(work / "audit")], log)
    run("report", cli + ["report", str(work / "audit"), "--format", "html,pdf"], log)
    (work / "acceptance.json").write_text(json.dumps(log, indent=2) + "\n")
    print(json.dumps({k: v for k, v in log.items() if k != "args"}, indent=2))


if __name__ == "__main__":
    main()
