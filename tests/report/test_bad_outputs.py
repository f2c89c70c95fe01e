"""Outputs that cannot be written, and hostile files inside an audit directory (issue 19's list):
one message and exit 2 before any work, or a report that states what it left out."""
from __future__ import annotations

import json
import shutil
import struct
import zlib

import pytest

from cli_helpers import run_cli


@pytest.fixture
def blocker(tmp_path):
    """A plain file where an output directory should be."""
    path = tmp_path / "a-file"
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize("command", [
    lambda audit, b: ["report", str(audit), "--format", "html", "--out", str(b / "reports")],
    lambda audit, b: ["gate", str(audit), "--policy", "fairness", "--junit", str(b / "gate.xml")],
    lambda audit, b: ["gate", str(audit), "--policy", "fairness", "--json", str(b / "sub" / "gate.json")],
    lambda audit, b: ["diff", str(audit), str(audit), "--json", str(b / "diff.json")],
    lambda audit, b: ["diff", str(audit), str(audit), "--html", str(b / "diff.html")],
    lambda audit, b: ["convert", "demo", str(b / "gen.safetensors")],
    lambda audit, b: ["convert", "demo", str(b / "gen.pt")],
    lambda audit, b: ["generate", "--seeds", "0-1", "--out", str(b / "grid.png")],
], ids=["report --out", "gate --junit", "gate --json", "diff --json", "diff --html", "convert native", "convert .pt",
        "generate --out"])
def test_an_output_under_a_file_is_one_message(honest_audit, blocker, capsys, command):
    before = sorted(p.name for p in honest_audit.iterdir())
    code, _, err = run_cli(capsys, *command(honest_audit, blocker))
    assert code == 2 and f"{blocker} is a file, not a directory" in err, err
    assert "Traceback" not in err and err.count("error:") == 1
    assert blocker.read_text() == "not a directory\n" and sorted(p.name for p in honest_audit.iterdir()) == before


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels (a decompression bomb's shape) with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side, words", [(10_000, "larger than any audit image"),  # iceaudit's own limit
                                         (200_000, "decompression bomb")])  # Pillow's, at open
def test_a_decompression_bomb_in_the_audit_directory_is_not_decoded(shortcut_audit, tmp_path, capsys, side, words):
    audit = tmp_path / "audit"
    shutil.copytree(shortcut_audit, audit)
    summary = json.loads((audit / "summary.json").read_text())
    faces = summary["walk_strips"][summary["drivers"][0]["subspace"]]  # the top driver has its own page
    bomb = audit / faces[0]["image"]
    bomb.write_bytes(_png_header_only(side, side))
    code, _, err = run_cli(capsys, "report", str(audit), "--format", "html")
    assert code == 0, err
    html = (audit / "report.html").read_text()
    missing = html[html.index('id="missing"'):]
    assert words in missing and faces[0]["image"] in missing
