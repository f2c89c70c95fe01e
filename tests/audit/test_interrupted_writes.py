"""Nothing written half (issue 19): one audit per directory, a full disk is one message that
keeps every finished file, and an audit killed during its baselines resumes to the same result."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cli_helpers import run_cli
from record_helpers import summary_json

REPO = Path(__file__).parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}


def _audit_args(world, out, *extra):
    return ["audit", "--classifier", str(world["classifier"]), "--card", str(world["card"]), "--generator",
            str(world["generator"]), "--bank", str(world["bank"]), "--n", "6", "--steps", "3", "--null", "2",
            "--baselines", "saliency", "--out", str(out), *extra]


def _iceaudit(args, limit_bytes=None):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return subprocess.run([sys.executable, "-m", "iceaudit", *args], env=ENV, capture_output=True, text=True,
                          preexec_fn=limit if limit_bytes else None, timeout=600)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_second_audit_into_a_busy_directory_is_refused_and_a_killed_holder_leaves_no_lock(world, tmp_path, capsys):
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom iceaudit import dirlock\n"
                               f"with dirlock.hold({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n"],
                              env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli(capsys, *_audit_args(world, out))
        assert code == 2 and f"is in use by another audit (process {holder.pid})" in err and "Traceback" not in err
        assert [p.name for p in out.iterdir()] == [".iceaudit.lock"]  # the refused audit wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, _, err = run_cli(capsys, *_audit_args(world, out))  # the kernel dropped the dead holder's lock
    assert code == 0, err
    assert (out / "summary.json").is_file()


def test_a_full_disk_is_one_message_keeps_finished_files_and_resume_completes(world, tmp_path, capsys):
    whole = tmp_path / "whole"
    code, _, err = run_cli(capsys, *_audit_args(world, whole))
    assert code == 0, err
    reference = _files(whole)
    sizes = sorted(len(v) for k, v in reference.items() if k.startswith("checkpoint/"))
    limit = sizes[-1] + 1  # every checkpoint shard fits; some image or table of the finished audit does not
    assert max(len(v) for v in reference.values()) > limit

    full = tmp_path / "full"
    proc = _iceaudit(_audit_args(world, full), limit_bytes=limit)
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2, err
    assert f"a file-size limit was reached while writing {full}" in err and "Traceback" not in err, err
    assert err.count("error:") == 1 and "--resume" in err
    left = _files(full)
    assert not [k for k in left if k.endswith(".tmp")]  # no half file left behind
    shards = [k for k in left if k.startswith("checkpoint/") and k.endswith(".parquet")]
    assert shards and all(left[k] == reference[k] for k in shards)  # every finished shard is whole
    assert "summary.json" not in left

    code, _, err = run_cli(capsys, *_audit_args(world, full, "--resume"))
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_parquet(full / "results.parquet"), pd.read_parquet(whole / "results.parquet"))
    a, b = summary_json(full), summary_json(whole)
    assert a["drivers"] == b["drivers"] and a["counterfactuals"] == b["counterfactuals"]


def test_a_full_disk_during_a_report_keeps_the_previous_report(world, tmp_path, capsys):
    audit = tmp_path / "audit"
    assert run_cli(capsys, *_audit_args(world, audit))[0] == 0
    assert run_cli(capsys, "report", str(audit), "--format", "html")[0] == 0
    before = (audit / "report.html").read_bytes()
    (audit / "summary.json").write_text((audit / "summary.json").read_text())  # same audit, report rebuilt
    proc = _iceaudit(["report", str(audit), "--format", "html"], limit_bytes=len(before) // 2)
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and f"a file-size limit was reached while writing {audit}" in err, err
    assert "Traceback" not in err
    assert (audit / "report.html").read_bytes() == before
    assert not list(audit.glob(".report.html.*"))


KILLED_DURING_BASELINES = r"""
import sys, time, torch
torch.set_num_threads(1)
from iceaudit.audit import AuditSettings, load_card, load_classifier, run_audit
from iceaudit.bank.format import load_bank
from iceaudit.stylegan2.loaders import load_generator

class SlowGradients(torch.nn.Module):  # slows only the baselines (the walks run without gradients)
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            time.sleep({sleep})
        return self.inner(x)

clf = load_classifier({classifier!r}, load_card({card!r}))
clf.model = SlowGradients(clf.model)
run_audit(clf, load_generator({generator!r}), load_bank({bank!r}), AuditSettings.of(
    n=6, n_steps=3, n_null=2, n_bootstrap=200, progress=False, out={out!r}, resume={resume},
    baselines=["saliency", "input_x_gradient", "latent"], strip_faces=2, n_counterfactual_images=2))
"""


def _strip_seconds(value):
    if isinstance(value, dict):
        return {k: _strip_seconds(v) for k, v in value.items() if not k.startswith("seconds")}
    if isinstance(value, list):
        return [_strip_seconds(v) for v in value]
    return value


def test_an_audit_killed_during_its_baselines_resumes_to_the_uninterrupted_result(world, tmp_path):
    def script(out, resume, sleep):
        return KILLED_DURING_BASELINES.format(classifier=str(world["classifier"]), card=str(world["card"]),
                                              generator=str(world["generator"]), bank=str(world["bank"]),
                                              out=str(out), resume=resume, sleep=sleep)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", script(killed, False, 2.0)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = killed / "checkpoint" / "baselines" / "saliency.json"
    deadline = time.time() + 300
    while time.time() < deadline and not first.is_file():
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.is_file() and not (killed / "checkpoint" / "baselines" / "latent.json").exists()
    assert not (killed / "summary.json").exists()
    kept = first.stat().st_mtime_ns
    stale = killed / "checkpoint" / ".000_x.f000000.walks.parquet.k1ll3d.tmp"  # what a writer killed mid-file leaves
    stale.write_bytes(b"half")

    for out, resume in ((killed, True), (tmp_path / "whole", False)):
        done = subprocess.run([sys.executable, "-c", script(out, resume, 0)], env=ENV, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    assert first.stat().st_mtime_ns == kept  # the finished method was read back, not recomputed
    assert not stale.exists() and not list(killed.rglob(".*.tmp"))
    a, b = summary_json(killed), summary_json(tmp_path / "whole")
    assert _strip_seconds(a["baselines"]) == _strip_seconds(b["baselines"])
    assert a["baselines"]["pixel"]["saliency"]["status"] == "ok" and a["baselines"]["latent"]["status"] == "ok"
    assert a["drivers"] == b["drivers"]
