"""The audit record: summary.json is written and read only through `iceaudit.record`, and the
typed reader loses nothing a writer put there."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from iceaudit.errors import UserError
from iceaudit.record import (AuditRecord, Driver, DriverEvidence, SanityCheck, load_record, record_from_json,
                             write_record)
from iceaudit.record.codec import RecordError, from_json, to_json

DATA = Path(__file__).parents[1] / "data"


def _keys_and_values_kept(original, written, where="summary"):
    """Everything in ``original`` is in ``written`` with the same value (the writer may add
    fields an older or hand-made record lacked, as nulls or defaults)."""
    if isinstance(original, dict):
        assert isinstance(written, dict), where
        for k, v in original.items():
            assert k in written, f"{where}.{k} lost"
            _keys_and_values_kept(v, written[k], f"{where}.{k}")
    elif isinstance(original, list):
        assert isinstance(written, list) and len(written) == len(original), where
        for i, (a, b) in enumerate(zip(original, written)):
            _keys_and_values_kept(a, b, f"{where}[{i}]")
    else:
        assert written == original and type(written) is type(original) or (
            isinstance(original, (int, float)) and not isinstance(original, bool) and written == original), where


@pytest.mark.parametrize("path", sorted(DATA.rglob("summary.json")), ids=lambda p: p.parent.name)
def test_every_summary_under_tests_data_loads_and_round_trips(path, tmp_path):
    data = json.loads(path.read_text())
    data.setdefault("schema_version", 1)
    data.setdefault("provenance", {})  # the golden file leaves out what describes the run
    record = record_from_json(data, path)
    assert isinstance(record, AuditRecord) and record.drivers and all(isinstance(d, Driver) for d in record.drivers)
    _keys_and_values_kept(data, to_json(record))
    written = write_record(record, tmp_path / "summary.json")
    assert load_record(written) == record  # the writer's output reads back to the same record


def test_a_real_audit_summary_is_rewritten_byte_for_byte(shortcut_audit, tmp_path):
    """The fixture audit went through record_from_json once; reading and writing again changes no byte."""
    first = (shortcut_audit / "summary.json").read_bytes()
    again = write_record(load_record(shortcut_audit), tmp_path / "summary.json").read_bytes()
    assert again == first


def test_absent_optional_fields_stay_absent_and_nulls_stay_null():
    d = Driver(subspace="smile", slope=0.2, ci_low=0.1, ci_high=0.3, flip_rate=0.5, significant=True)
    assert d.name == "smile" and d.extra is None
    out = to_json(d)
    assert out["extra"] == {} and out["p_value"] is None  # hand-made: no evidence, unmeasured p
    assert from_json(Driver, out) == d
    with_extra = Driver(**{**vars(d), "extra": DriverEvidence(margin_share=2.0, basis_rows=3)})
    assert from_json(Driver, to_json(with_extra)).extra.basis_rows == 3


@pytest.mark.parametrize("mutate, where", [
    (lambda s: s["drivers"][0].update(slope="steep"), "drivers[0].slope"),
    (lambda s: s["drivers"][0].pop("significant"), "drivers[0]"),
    (lambda s: s["counterfactuals"]["per_subspace"].update(smile=[1, 2]), "counterfactuals.per_subspace.smile"),
    (lambda s: s["validity"]["null_floor"].update(n_directions=2.5), "validity.null_floor.n_directions"),
    (lambda s: s["baselines"]["latent"]["subspaces"]["smile"].update(share="most"), "baselines.latent.subspaces.smile"),
    (lambda s: s["baselines"]["agreement"].update(walk_vs_latent=[0.5]), "baselines.agreement.walk_vs_latent"),
])
def test_a_field_of_the_wrong_type_is_one_message_naming_it(shortcut_audit, mutate, where):
    data = json.loads((shortcut_audit / "summary.json").read_text())
    mutate(data)
    with pytest.raises(UserError, match="not a well-formed iceaudit summary") as err:
        record_from_json(data, "summary.json")
    assert where in str(err.value)


def test_the_typed_reader_checks_what_the_schema_lets_through():
    """A sanity check's significant list of numbers: the schema says strings, the types agree."""
    with pytest.raises(RecordError, match=r"record\.significant\[0\]: must be a string"):
        from_json(SanityCheck, {"significant": [3]})
    with pytest.raises(RecordError, match="lacks the key 'subspace'"):
        from_json(Driver, {"slope": 1.0})


def test_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"schema_version": 2, "drivers": [], "provenance": {}}))
    with pytest.raises(UserError, match="schema version 2 is not supported"):
        load_record(path)


def test_the_baselines_section_reads_into_its_types(shortcut_audit):
    from iceaudit.record import AttFindChannel, Baselines, LatentBaseline, PixelBaseline

    base = load_record(shortcut_audit).baselines
    assert isinstance(base, Baselines) and isinstance(base.latent, LatentBaseline)
    assert all(isinstance(p, PixelBaseline) for p in base.pixel.values())
    assert all(isinstance(c, AttFindChannel) for c in base.attfind.unnamed_drivers)
    empty = json.loads((shortcut_audit / "summary.json").read_text())
    empty["baselines"] = {}
    record = record_from_json(empty, "summary.json")
    assert record.baselines is None and to_json(record)["baselines"] == {}  # no baselines: {} both ways
