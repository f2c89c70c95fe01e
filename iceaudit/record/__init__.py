"""The audit record (summary.json) as typed dataclasses, with its one writer and one reader.

    from iceaudit.record import load_record
    record = load_record("audit/")          # AuditRecord, schema-checked
    record.drivers[0].slope, record.settings.n_samples
"""
from iceaudit.record.audit import (SCHEMA_VERSION, AuditRecord, BankRecord, BaseRate, BestEdit, ClassifierRecord,
                                   CompileOutcome, Counterfactuals, Driver, DriverEvidence, Execution, FaceOutcome, Fairness,
                                   FairnessFinding, FlipStats, GeneratorRecord, NullFloor, NullTest, OwnCriterion,
                                   Provenance, SanityCheck, SettingsRecord, SubspaceRecord, Validity, WalkStrip)
from iceaudit.record.baselines import (Agreement, AttFindBaseline, AttFindChannel, Baselines, LatentBaseline,
                                       PixelBaseline, TcavBaseline)
from iceaudit.record.io import load_record, record_from_json, write_record
from iceaudit.record.verdict import agreement_word, compose_verdict

__all__ = [
    "SCHEMA_VERSION", "Agreement", "AttFindBaseline", "AttFindChannel", "Baselines", "LatentBaseline",
    "PixelBaseline", "TcavBaseline", "AuditRecord", "BankRecord", "BaseRate", "BestEdit", "ClassifierRecord", "Counterfactuals",
    "CompileOutcome", "Driver", "DriverEvidence", "Execution", "FaceOutcome", "Fairness", "FairnessFinding", "FlipStats",
    "GeneratorRecord", "NullFloor", "NullTest", "OwnCriterion", "Provenance", "SanityCheck", "SettingsRecord",
    "SubspaceRecord", "Validity", "WalkStrip", "agreement_word", "compose_verdict", "load_record",
    "record_from_json", "write_record",
]
