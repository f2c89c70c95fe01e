"""The runtime stands apart from the tools that built the demo world."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_an_audit_with_its_report_and_gate_never_imports_the_training_code(tmp_path):
    """A demo audit, its report and the fairness gate run in a fresh interpreter; afterwards no
    module of iceaudit.facelab.train (generator, knobs, readers, training loops) is loaded."""
    code = f"""
import json, sys
import iceaudit
from iceaudit.cli import app  # every command module registered, as `iceaudit --help` does
from iceaudit.resources import demo_classifier
clf, card = demo_classifier("smiling")
a = iceaudit.audit(clf, card, n=4, n_null=2, n_steps=3, baselines="none", subspaces=["smile", "skin_tone"],
                   out={str(tmp_path / "a")!r}, progress=False)
a.report(formats=["html"])
a.gate("fairness")
print(json.dumps(sorted(m for m in sys.modules if m.startswith("iceaudit.facelab"))))
import iceaudit.facelab.train.loop  # the check itself can see a loaded training module
assert "iceaudit.facelab.train.loop" in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if m.startswith("iceaudit.facelab.train")], loaded
