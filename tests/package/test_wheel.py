"""The built wheel works outside the checkout: `iceaudit demo` and `iceaudit gate` from an empty folder.

Builds the sdist and the wheel (`python -m build --no-isolation`), installs the wheel into a
fresh virtual environment outside the source tree (its dependencies are borrowed from the
environment running the tests through a .pth line, so nothing is downloaded; the
environment's own iceaudit is an editable finder that a plain path line does not load), and
runs the commands a new user would, from an empty directory.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run(args: list, cwd: Path, **kw) -> subprocess.CompletedProcess:
    # no ICEAUDIT_TRUST_CLASSIFIER: the shipped classifiers must run untrusted-by-default from a wheel
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ICEAUDIT_TEMPLATES", "ICEAUDIT_TRUST_CLASSIFIER")}
    env["OMP_NUM_THREADS"] = "2"
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", out, ROOT], cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    r = run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=env_dir.parent)
    assert r.returncode == 0, r.stderr
    purelib = subprocess.run([env_dir / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "borrowed-deps.pth").write_text("\n".join(deps) + "\n")
    wheel = next(dist.glob("iceaudit-*.whl"))
    r = run([sys.executable, "-m", "pip", "--python", env_dir / "bin" / "python", "install", "-q", "--no-deps",
             "--no-index", wheel], cwd=env_dir.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    return env_dir


def test_wheel_and_sdist_carry_everything_the_runtime_needs(dist):
    names = set(zipfile.ZipFile(next(dist.glob("iceaudit-*.whl"))).namelist())
    for needed in ("iceaudit/subspace_bank/demo/manifest.json", "iceaudit/subspace_bank/demo/bases.safetensors",
                   "iceaudit/examples/facelab/smiling_skin_shortcut.pt", "iceaudit/examples/facelab/smiling_skin_shortcut.toml",
                   "iceaudit/examples/policies/fairness.toml", "iceaudit/report_templates/report.html.j2",
                   "iceaudit/facelab/assets/demo_generator.safetensors", "iceaudit/bank/recipes/facelab.toml"):
        assert needed in names, needed
    assert list(dist.glob("iceaudit-*.tar.gz")), "no sdist"


def test_installed_wheel_runs_demo_and_gate_from_an_empty_directory(venv, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    exe = venv / "bin" / "iceaudit"
    version = run([exe, "--version"], cwd=work)
    assert version.returncode == 0 and version.stdout.startswith("iceaudit "), version.stderr
    where = run([venv / "bin" / "python", "-c", "import iceaudit, iceaudit.resources as r; "
                 "print(iceaudit.__file__); print(r.shipped_bank('demo'))"], cwd=work)
    assert where.returncode == 0, where.stderr
    assert all(str(ROOT) not in line for line in where.stdout.splitlines()), where.stdout  # nothing from the checkout

    demo = run([exe, "demo", "--n", "8", "--out", "audit", "--format", "html"], cwd=work, timeout=900)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    summary = json.loads((work / "audit" / "summary.json").read_text())
    assert summary["provenance"]["iceaudit_version"] == version.stdout.split()[1]
    assert (work / "audit" / "report.html").is_file()

    gate = run([exe, "gate", "audit", "--policy", "fairness", "--json", "gate.json"], cwd=work)
    assert gate.returncode in (0, 1), gate.stdout + gate.stderr  # a verdict, not a usage error
    assert json.loads((work / "gate.json").read_text())["policy"]
