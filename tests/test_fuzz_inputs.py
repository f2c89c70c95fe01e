"""Fuzzing every input record (issue 19): real generator pickles, native generator files,
banks, model cards, policies and audit summaries, mutated by hypothesis. The property:
a loader either succeeds or raises one UserError (the CLI's exit 2 with one message) —
never another exception (a traceback), and never a write outside its output directory.

Bounded: a fixed number of examples per target, derandomized so CI sees the same cases."""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iceaudit.errors import UserError

sys.path.insert(0, str(Path(__file__).parent / "audit"))
from audit_synth import synthetic_bank, tiny_generator  # noqa: E402
from stylegan2_io_fakes import training_snapshot, write_pickle  # noqa: E402

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ROOT = Path(__file__).parents[1]

# --- mutations --------------------------------------------------------------------------

byte_edits = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.floats(0, 1, exclude_max=True),
                                st.integers(0, 255)), min_size=1, max_size=8)


def mutate_bytes(data: bytes, edits, truncate: float | None = None) -> bytes:
    """Flip, insert or delete bytes at relative positions; then perhaps cut the tail."""
    out = bytearray(data)
    for op, where, value in edits:
        i = int(where * len(out)) if out else 0
        if op == "flip" and out:
            out[i] ^= value or 1
        elif op == "insert":
            out.insert(i, value)
        elif op == "delete" and out:
            del out[i]
    if truncate is not None:
        out = out[: int(truncate * len(out))]
    return bytes(out)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


@st.composite
def json_mutation(draw, doc):
    """`doc` with one to three values (or keys) replaced, removed or added."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(json_values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["replace", "remove", "add"]))
        if op == "replace":
            parent[path[-1]] = draw(json_values)
        elif op == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return doc


def toml_value(value) -> str:
    """A TOML literal for a JSON value (tables inline); None is not TOML: an empty string."""
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, "nan" if value != value else repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


# --- the property ------------------------------------------------------------------------


def refuses_cleanly(load, folder: Path, out: Path | None = None) -> None:
    """`load()` succeeds or raises UserError, and writes nothing in `folder` except under `out`."""
    before = {p for p in folder.rglob("*")}
    try:
        load()
    except UserError as err:
        assert err.message and "\n" not in err.message.strip(), err.message
    after = {p for p in folder.rglob("*")}
    new = {p for p in after - before if out is None or not p.is_relative_to(out)}
    assert not new, new


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    from iceaudit.bank.format import save_bank
    from iceaudit.stylegan2.loaders import save_native

    d = tmp_path_factory.mktemp("originals")
    torch.manual_seed(0)
    G = tiny_generator()
    write_pickle(training_snapshot(G), d / "snap.pkl")
    save_native(G, d / "gen")
    save_bank(synthetic_bank(G), d / "bank")
    return d


@contextlib.contextmanager
def scratch():
    """A fresh directory per example (hypothesis reuses a test's fixtures across examples)."""
    folder = Path(tempfile.mkdtemp(prefix="iceaudit-fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@FUZZ
@given(edits=byte_edits, truncate=st.none() | st.floats(0, 1))
def test_mutated_generator_pickles(originals, edits, truncate):
    from iceaudit.stylegan2.loaders import load_generator

    with scratch() as folder:
        path = folder / "g.pkl"
        path.write_bytes(mutate_bytes((originals / "snap.pkl").read_bytes(), edits, truncate))
        refuses_cleanly(lambda: load_generator(path), folder)


@FUZZ
@given(data=st.data())
def test_mutated_native_generator_files(originals, data):
    from iceaudit.stylegan2.loaders import load_generator

    with scratch() as folder:
        shutil.copy(originals / "gen.safetensors", folder / "gen.safetensors")
        config = originals / "gen.json"
        if data.draw(st.booleans(), label="mutate the JSON config (else the weights' header)"):
            doc = data.draw(json_mutation(json.loads(config.read_text())), label="config")
            (folder / "gen.json").write_text(json.dumps(doc))
        else:
            shutil.copy(config, folder / "gen.json")
            raw = (folder / "gen.safetensors").read_bytes()
            head = int.from_bytes(raw[:8], "little") + 8
            edits = data.draw(byte_edits, label="header edits")
            (folder / "gen.safetensors").write_bytes(raw[:8] + mutate_bytes(raw[8:head], edits) + raw[head:])
        refuses_cleanly(lambda: load_generator(folder / "gen.safetensors"), folder)


@FUZZ
@given(data=st.data())
def test_mutated_banks(originals, data):
    from iceaudit.bank.format import load_bank

    with scratch() as folder:
        bank = folder / "bank"
        shutil.copytree(originals / "bank", bank)
        manifest = json.loads((bank / "manifest.json").read_text())
        if data.draw(st.booleans(), label="mutate the manifest (else the bases file)"):
            (bank / "manifest.json").write_text(json.dumps(data.draw(json_mutation(manifest), label="manifest")))
        else:
            raw = (bank / "bases.safetensors").read_bytes()
            (bank / "bases.safetensors").write_bytes(mutate_bytes(raw, data.draw(byte_edits, label="bases edits")))
        refuses_cleanly(lambda: load_bank(bank), folder)


CARD = {"name": "smile", "input_size": 64, "crop": "ffhq", "value_range": [0, 1], "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5], "channel_order": "RGB", "head": "sigmoid", "index": 0, "threshold": 0.5,
        "positive_class": "smiling"}


@FUZZ
@given(data=st.data(), as_yaml=st.booleans())
def test_mutated_model_cards(data, as_yaml):
    import yaml

    from iceaudit.audit.classifier import load_card

    doc = data.draw(json_mutation(CARD), label="card")
    with scratch() as folder:
        if as_yaml:
            path = folder / "card.yaml"
            path.write_text(yaml.safe_dump(doc))
        else:
            path = folder / "card.toml"
            body = doc if isinstance(doc, dict) else {"value": doc}
            path.write_text("".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in body.items()))
        refuses_cleanly(lambda: load_card(path), folder)


@FUZZ
@given(data=st.data())
def test_mutated_policies(data):
    from iceaudit.gate import load_policy

    text = (ROOT / "examples" / "policies" / "fairness.toml").read_text()
    edits = data.draw(byte_edits, label="policy edits")
    with scratch() as folder:
        path = folder / "policy.toml"
        path.write_bytes(mutate_bytes(text.encode(), edits))
        refuses_cleanly(lambda: load_policy(path), folder)


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_mutated_summaries_through_the_gate_and_the_report(data):
    from iceaudit.gate import run_gate
    from iceaudit.report import build_report

    source = ROOT / "tests" / "data" / "report_baselines"
    doc = data.draw(json_mutation(json.loads((source / "summary.json").read_text())), label="summary")
    with scratch() as folder:
        audit = folder / "audit"
        audit.mkdir()
        (audit / "summary.json").write_text(json.dumps(doc))
        out = folder / "report"
        refuses_cleanly(lambda: run_gate(audit, ROOT / "examples" / "policies" / "fairness.toml"), folder)
        refuses_cleanly(lambda: build_report(audit, formats=["html"], out_dir=out), folder, out=out)


@pytest.mark.parametrize("what, name, text", [
    ("audit summary", "summary.json", "[" * 100_000 + "]" * 100_000),
    ("policy", "policy.toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n"),
    ("model card", "card.toml", "name = " + "[" * 100_000 + "]" * 100_000 + "\n"),
    ("model card", "card.yaml", "name: " + "[" * 100_000 + "]" * 100_000 + "\n"),
])
def test_documents_nested_past_the_parser_are_one_message(tmp_path, what, name, text):
    from iceaudit.audit.classifier import load_card
    from iceaudit.gate import load_policy
    from iceaudit.record import load_record

    path = tmp_path / name
    path.write_text(text)
    load = {"audit summary": load_record, "policy": load_policy, "model card": load_card}[what]
    with pytest.raises(UserError, match=f"{what} {path}: (nested too deeply to be read|not valid)"):
        load(path)


@pytest.mark.parametrize("what, name, size", [("model card", "card.toml", 2 << 20), ("policy", "policy.toml", 2 << 20),
                                              ("audit summary", "summary.json", 300 << 20)])
def test_records_larger_than_any_real_one_are_refused_unread(tmp_path, what, name, size):
    from iceaudit.audit.classifier import load_card
    from iceaudit.gate import load_policy
    from iceaudit.record import load_record

    path = tmp_path / name
    with open(path, "wb") as fh:  # sparse: nothing is really written
        fh.truncate(size)
    load = {"audit summary": load_record, "policy": load_policy, "model card": load_card}[what]
    with pytest.raises(UserError, match="is larger than any"):
        load(path)


# --- the same property at the command line: exit 0/1 or exit 2 with one message ------------


def _cli(capsys, *args):
    from cli_helpers import run_cli

    code, _, err = run_cli(capsys, *args)
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.count("error:") == 1, err
    return code


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_mutated_inputs_through_the_cli(originals, capsys, data):
    with scratch() as folder:
        which = data.draw(st.sampled_from(["info", "gate", "report"]), label="command")
        if which == "info":
            path = folder / "g.pkl"
            path.write_bytes(mutate_bytes((originals / "snap.pkl").read_bytes(), data.draw(byte_edits, label="edits")))
            refuses_cleanly(lambda: _cli(capsys, "info", str(path)), folder)
        else:
            source = ROOT / "tests" / "data" / "report_baselines" / "summary.json"
            audit = folder / "audit"
            audit.mkdir()
            (audit / "summary.json").write_text(json.dumps(data.draw(json_mutation(json.loads(source.read_text())))))
            out = folder / "out"
            args = (["gate", str(audit), "--policy", "fairness", "--json", str(out / "gate.json")] if which == "gate"
                    else ["report", str(audit), "--format", "html", "--out", str(out)])
            out.mkdir()
            refuses_cleanly(lambda: _cli(capsys, *args), folder, out=out)
