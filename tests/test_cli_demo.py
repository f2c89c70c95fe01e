"""`iceaudit demo` checks its options before any work."""
from __future__ import annotations

import pytest

from cli_helpers import run_cli


@pytest.mark.parametrize("option, value, message", [
    ("--format", "foo", "--format: expected html and/or pdf, got 'foo'"),
    ("--policy", "no-such-policy", "no shipped policy has that name"),
    ("--policy", "missing/policy.toml", "no policy file"),
    ("--classifier", "nope", "unknown demo classifier 'nope'"),
])
def test_bad_demo_options_exit_2_before_the_audit(capsys, tmp_path, option, value, message):
    out = tmp_path / "demo"
    code, _, err = run_cli(capsys, "demo", option, value, "--out", str(out))
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()  # nothing written: refused before the audit started
