"""The Ray backend gives exactly the local backend's audit, survives a killed worker and
resumes what another backend started. A local Ray instance with 2 CPUs: 2 workers."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray  # part of the [test] extra
import torch

import audit_synth
from audit_synth import MeanRed, base_scores, redness_classifier, synthetic_bank, tiny_generator
from iceaudit.api import load_classifier
from iceaudit.audit.classifier import ModelCard
from iceaudit.audit.runner import AuditSettings, run_audit
from iceaudit.errors import UserError
from iceaudit.record import CompileOutcome, Execution

N = 16
SETTINGS = AuditSettings.of(n=N, n_steps=5, n_null=3, n_bootstrap=300, progress=False, shard_faces=4, strip_faces=2,
                         n_counterfactual_images=2, strip_subspaces=2)


@pytest.fixture(scope="module")
def cluster():
    import ray.cloudpickle as cloudpickle

    # Test-only classes travel to the workers by value (the workers cannot import tests/).
    for module in (audit_synth, sys.modules[__name__]):
        cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()
    for module in (audit_synth, sys.modules[__name__]):
        cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    G = tiny_generator()
    return G, synthetic_bank(G), redness_classifier(G, tmp_path_factory.mktemp("clf"), N)


@pytest.fixture(scope="module")
def local_audit(tiny, tmp_path_factory):
    G, bank, clf = tiny
    out = tmp_path_factory.mktemp("local") / "audit"
    run_audit(clf, G, bank, SETTINGS.replace(out=out))
    return out


def _same_audit(a: Path, b: Path) -> None:
    """Bit for bit: the tables, and summary.json but for its provenance (time, command, backend)."""
    for table in ("results", "counterfactuals"):
        left, right = pd.read_parquet(a / f"{table}.parquet"), pd.read_parquet(b / f"{table}.parquet")
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    sa.pop("provenance"), sb.pop("provenance")
    assert sa == sb


def test_ray_backend_gives_the_local_audit_bit_for_bit(cluster, tiny, local_audit, tmp_path):
    G, bank, clf = tiny
    out = tmp_path / "ray"
    result = run_audit(clf, G, bank, SETTINGS.replace(out=out, backend="ray", workers=2))
    _same_audit(local_audit, out)
    execution = result.record.provenance.execution
    assert execution == Execution(backend="ray", workers=2, units=len(bank.subspaces) * (N // 4), units_from_checkpoint=0,
                                  shard_faces=4, compile=CompileOutcome(requested=False), memory_format="contiguous")
    # every unit was written to the checkpoint as it arrived
    assert len(list((out / "checkpoint").glob("*.walks.parquet"))) == execution.units


class KillsItsWorkerOnce(torch.nn.Module):
    """MeanRed, but the first forward in a process other than the driver's SIGKILLs that process."""

    def __init__(self, marker: str, driver_pid: int) -> None:
        super().__init__()
        self.inner, self.marker, self.driver_pid = MeanRed(), marker, driver_pid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if os.getpid() != self.driver_pid and os.path.exists(self.marker):
            try:
                os.unlink(self.marker)
            except FileNotFoundError:  # the other worker got there first
                return self.inner(x)
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner(x)


def test_a_killed_worker_is_replaced_and_the_result_is_unchanged(cluster, tiny, local_audit, tmp_path):
    G, bank, _ = tiny
    marker = tmp_path / "kill-once"
    marker.write_text("")
    card = ModelCard(name="redness", head="logit", threshold=float(np.median(base_scores(G, MeanRed(), N))),
                     positive_class="red")
    clf = load_classifier(KillsItsWorkerOnce(str(marker), os.getpid()), card)
    out = tmp_path / "ray-killed"
    run_audit(clf, G, bank, SETTINGS.replace(out=out, backend="ray", workers=2))
    assert not marker.exists()  # a worker really died
    # same numbers as the TorchScript MeanRed audited locally (the card is the same)
    for table in ("results", "counterfactuals"):
        pd.testing.assert_frame_equal(pd.read_parquet(local_audit / f"{table}.parquet"),
                                      pd.read_parquet(out / f"{table}.parquet"), check_exact=True)


def test_resume_on_ray_reuses_the_shards_a_local_run_wrote(cluster, tiny, local_audit, tmp_path):
    import shutil

    G, bank, clf = tiny
    out = tmp_path / "interrupted"
    shutil.copytree(local_audit / "checkpoint", out / "checkpoint")  # as a local run killed after some units
    shards = sorted((out / "checkpoint").glob("*.walks.parquet"))
    for shard in shards[len(shards) // 2:]:
        shard.unlink()  # its .cf.parquet stays, as when a run dies between the two writes
    kept = {p.name: p.stat().st_mtime_ns for shard in shards[:len(shards) // 2]
            for p in (shard, shard.with_name(shard.name.replace(".walks.", ".cf.")))}
    result = run_audit(clf, G, bank, SETTINGS.replace(out=out, backend="ray", workers=2, resume=True))
    _same_audit(local_audit, out)
    assert result.record.provenance.execution.units_from_checkpoint == len(shards) - len(shards) // 2
    assert {p: (out / "checkpoint" / p).stat().st_mtime_ns for p in kept} == kept  # not recomputed, not rewritten


def test_ray_options_are_checked_before_any_work(tiny, tmp_path):
    G, bank, clf = tiny
    with pytest.raises(UserError, match="--workers must be a whole number from 1"):
        run_audit(clf, G, bank, SETTINGS.replace(out=tmp_path / "a", backend="ray", workers=0))
    with pytest.raises(UserError, match="--backend must be one of local, ray"):
        run_audit(clf, G, bank, SETTINGS.replace(out=tmp_path / "b", backend="dask"))
    with pytest.raises(UserError, match="no Ray cluster answers there"):
        run_audit(clf, G, bank, SETTINGS.replace(out=tmp_path / "c", backend="ray", ray_address="127.0.0.1:1"))
    with pytest.raises(UserError, match="must be `auto` or HOST:PORT"):
        run_audit(clf, G, bank, SETTINGS.replace(out=tmp_path / "d", backend="ray", ray_address="head-node"))
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_a_sweep_on_ray_gates_each_model_as_the_local_sweep_does(cluster, world, tmp_path):
    from audit_synth import Constant, save_script
    from iceaudit.sweep import find_classifiers, run_sweep

    save_script(Constant(), tmp_path / "constant.pt")
    (tmp_path / "constant.toml").write_text('name = "constant"\nhead = "logit"\nthreshold = 0.0\n')
    models = find_classifiers([world["classifier"], tmp_path / "constant.pt"])
    policy = tmp_path / "policy.toml"
    policy.write_text('name = "no red"\n[[rule]]\nname = "redness moves little"\nsubspace = "redness"\n'
                      'max_abs_slope = 0.01\n')
    options = dict(generator=str(world["generator"]), bank=str(world["bank"]), formats=(), n=N, n_steps=5, n_null=3,
                   n_bootstrap=300, shard_faces=4, baselines=[], progress=False)
    indexes = {backend: run_sweep(models, policy, tmp_path / backend, backend=backend, workers=2, **options)
               for backend in ("local", "ray")}
    for backend, index in indexes.items():
        assert [(m.name, m.passed) for m in index.models] == [("red", False), ("constant", True)], backend
    assert [m.slopes for m in indexes["ray"].models] == [m.slopes for m in indexes["local"].models]
    for name in ("red", "constant"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local" / name / "results.parquet"),
                                      pd.read_parquet(tmp_path / "ray" / name / "results.parquet"), check_exact=True)


def test_the_package_imports_and_refuses_the_ray_backend_clearly_without_ray(tmp_path):
    import subprocess

    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "import iceaudit, iceaudit.api, iceaudit.audit.runner, iceaudit.sweep, iceaudit.cli\n"
            "from iceaudit.audit.ray_backend import import_ray\n"
            "from iceaudit.errors import UserError\n"
            "try:\n    import_ray()\nexcept UserError as e:\n    print(e.message, '|', e.hint)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--backend ray needs Ray | pip install 'iceaudit[ray]'" in proc.stdout


def test_cli_audit_on_ray_writes_the_local_numbers(cluster, world, tmp_path, capsys):
    from cli_helpers import run_cli

    common = ["audit", "--classifier", str(world["classifier"]), "--card", str(world["card"]), "--generator",
              str(world["generator"]), "--bank", str(world["bank"]), "--n", "8", "--steps", "5", "--null", "3",
              "--baselines", "none", "--shard-faces", "4"]
    outs = {}
    for backend in ("local", "ray"):
        outs[backend] = tmp_path / backend
        code, _, err = run_cli(capsys, *common, "--out", str(outs[backend]), "--backend", backend, "--workers", "2")
        assert code == 0, err
    _same_audit(outs["local"], outs["ray"])
    summary = json.loads((outs["ray"] / "summary.json").read_text())
    assert summary["provenance"]["execution"]["backend"] == "ray"
    assert "--backend ray" in summary["provenance"]["command"]
