"""The shape of summary.json as a JSON Schema, checked when a summary is read.

summary.json is the contract every later stage reads (report, gate, diff, sweep),
and it may come from anywhere: another machine, an older iceaudit, a hand edit.
This schema states the types of every section those readers use and the keys
they index directly, so a malformed summary is one message naming the first
wrong field instead of a traceback deep inside the report. Numbers may be null
wherever an audit may leave them unmeasured; unknown keys are allowed (newer
writers may add fields).
"""
from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

NUM: Schema = {"type": ["number", "null"]}
REAL: Schema = {"type": "number"}  # drawn in a chart: never null
INT: Schema = {"type": ["integer", "null"]}
STR: Schema = {"type": ["string", "null"]}
BOOL: Schema = {"type": ["boolean", "null"]}
STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
NUMBERS: Schema = {"type": "array", "items": NUM}


def obj(properties: dict[str, Schema] | None = None, required: tuple[str, ...] = (), values: Schema | None = None) -> Schema:
    """An object with typed `properties`, the `required` keys, and (optionally) a schema for other values."""
    out: Schema = {"type": "object", "properties": properties or {}, "required": list(required)}
    if values is not None:
        out["additionalProperties"] = values
    return out


def mapping(values: Schema) -> Schema:
    """An object keyed by data (subspace ids, method names, regions) with values of one shape."""
    return {"type": "object", "additionalProperties": values}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [{"type": "null"}, schema]}


DRIVER = obj({
    "subspace": {"type": "string"}, "name": {"type": "string"}, "tags": STRINGS,
    "slope": {"type": "number"}, "ci_low": {"type": "number"}, "ci_high": {"type": "number"},
    "flip_rate": {"type": "number"}, "significant": {"type": "boolean"}, "p_value": NUM, "p_adjusted": NUM,
    "mean_abs_change": NUM, "monotonicity": NUM, "heterogeneity": NUM, "null_abs_slope": NUM,
    "effect": BOOL, "beyond_random": BOOL, "mixed_sign": BOOL, "p_effect": NUM, "p_effect_adjusted": NUM,
    "extra": obj({"margin_share": NUM, "median_margin": NUM, "beats_null": BOOL, "end_slope": NUM, "null_sigma": NUM,
                  "null_df": NUM, "null_slopes": NUMBERS, "image_change": NUM, "mean_abs_slope": NUM,
                  "ci_excludes_zero": BOOL, "unit": STR, "step_range": NUMBERS, "space": STR,
                  "basis_rows": INT, "rows_audited": INT, "abs_margin_share": NUM, "up_share": NUM,
                  "down_share": NUM, "p_size_adjusted": NUM, "own_effect": NUM, "slope_per_own_sd": NUM}),
}, required=("subspace", "slope", "ci_low", "ci_high", "flip_rate", "significant"))

BANK_SUBSPACE = obj({"id": {"type": "string"}, "name": STR, "tags": STRINGS, "unit": STR, "description": STR,
                     "step_range": NUMBERS, "alphas": NUMBERS, "layers": {"type": ["array", "string", "null"]},
                     "bank_step_range": NUMBERS},
                    required=("id",))

STRIP = obj({"sample": INT, "image": STR, "alphas": NUMBERS, "scores": NUMBERS})

COUNTERFACTUALS = obj({
    "method": STR,
    "per_subspace": mapping(obj({"success_rate": NUM, "median_step": NUM, "n_flipped": INT})),
    "best": array(obj({"sample": INT, "seed": INT, "subspace": STR, "step": NUM, "score_before": NUM,
                       "score_after": NUM, "original": STR, "counterfactual": STR, "diff": STR, "pair": STR})),
    "per_face": array(obj({"sample": INT, "seed": INT, "score": NUM, "positive": BOOL, "flipped_by": STRINGS,
                           "best_subspace": STR, "best_step": NUM})),
})

FAIRNESS = obj({
    "protected": STRINGS,
    "findings": array(obj({"subspace": {"type": "string"}, "name": STR, "slope": NUM, "ci_low": NUM, "ci_high": NUM,
                           "flip_rate": NUM, "significant": BOOL, "p_adjusted": NUM, "statement": STR},
                          required=("subspace",))),
})

VALIDITY = obj({
    "own_criterion": mapping(obj({"criterion": STR, "effect_per_unit": NUM, "expected": NUM, "ok": BOOL,
                                  "measured_at": STR, "faces": INT, "bank_effect_per_unit": NUM})),
    "leakage": mapping(mapping(NUM)),
    "null_floor": obj({"test": STR, "n_directions": INT, "n_per_subspace": INT, "quantile": NUM, "abs_slope": NUM,
                       "per_subspace": mapping(obj({"floor": NUM, "sigma": NUM, "df": NUM, "null_slopes": NUMBERS,
                                                    "end_slope": NUM, "image_change": NUM}))}),
    "base_rate": obj({"positive": NUM, "n_positive": INT, "n": INT, "note": STR}),
    "sanity": mapping(obj({"n_significant": INT, "significant": STRINGS, "max_abs_slope": NUM, "passed": BOOL,
                           "note": STR})),
})

QUALITY = obj({"infidelity": NUM, "sensitivity_max": NUM, "sensitivity_max_relative": NUM, "sensitivity_note": STR})


def _pixel_entry(share_key: str) -> Schema:
    region = obj({share_key: REAL, "area_share": REAL}, required=(share_key, "area_share"), values=NUM)
    return obj({"status": {"type": "string"}, "reason": STR, "seconds": NUM, "seconds_per_face": NUM,
                "regions": mapping(region), "region_ranking": STRINGS, "map": STR, "quality": QUALITY},
               required=("status",))


RHO = obj({"n": INT, "rho": NUM, "p_value": NUM})
ATTFIND_TOP = obj({"channel": {"type": "string"}, "layer": STR, "index": INT, "position": INT, "direction": STR,
                   "mean_effect": NUM, "estimated_flip_share": NUM}, required=("channel",))

CHANNEL = obj({"channel": {"type": "string"}, "layer": STR, "index": INT, "direction": STR, "mean_effect": NUM,
               "best_match": nullable(obj({"subspace": STR, "latent_overlap": NUM, "image_cosine": NUM},
                                          required=("subspace", "latent_overlap", "image_cosine"))),
               "explained_by_bank": BOOL, "region": STR, "region_votes": mapping(NUM), "walk_strip": STR},
              required=("channel", "best_match", "mean_effect", "direction", "region"))

BASELINES = obj({
    "schema": INT, "methods": STRINGS, "threshold": NUM, "options": mapping({}), "n_faces": INT, "resolution": INT,
    "labels": nullable(STRINGS), "maps_npz": STR,
    "pixel": obj({"feature_ablation": _pixel_entry("share")}, values=_pixel_entry("mass_share")),
    "latent": obj({"status": {"type": "string"}, "reason": STR, "n_steps": INT, "n_faces": INT,
                   "completeness_gap": NUM, "ranking": STRINGS, "ranking_by_slope_estimate": STRINGS,
                   "subspaces": mapping(obj({"attribution": REAL, "abs_attribution": REAL, "share": REAL,
                                             "covariant_attribution": NUM, "slope_estimate": REAL,
                                             "abs_slope_estimate": REAL, "dims_in_s": INT},
                                            required=("attribution", "abs_attribution", "share", "slope_estimate",
                                                      "abs_slope_estimate")))},
                  required=("status",)),
    "attfind": obj({
        "status": {"type": "string"}, "reason": STR, "n_faces": INT, "n_channels": INT, "n_evaluated": INT,
        "threshold": NUM, "note": STR, "renders": INT,
        "classes": mapping(obj({"n_faces_to_flip": INT, "top": array(ATTFIND_TOP), "sufficiency_curve": NUMBERS,
                                "sufficiency": NUM}, required=("n_faces_to_flip", "top", "sufficiency"))),
        "channels": array(CHANNEL),
        "unnamed_drivers": array(CHANNEL),
    }, required=("status",)),
    "tcav": obj({"status": {"type": "string"}, "reason": STR, "layer": STR, "n_faces": INT, "n_random": INT,
                 "level": NUM, "concepts": STR, "random_scores": NUMBERS, "seconds": NUM,
                 "subspaces": mapping(obj({"score": NUM, "scores": NUMBERS, "p_value": NUM, "p_adjusted": NUM,
                                           "significant": BOOL, "direction": STR, "cav_accuracy": NUM},
                                          required=("score", "p_adjusted", "significant"))),
                 "agreement": nullable(obj({"n": INT, "same_call": INT, "both_significant": INT,
                                            "same_direction": INT, "rows": array(mapping({}))}))},
                required=("status",)),
    "agreement": obj({"pixel_method": STR, "subspace_regions": mapping(STR), "walk_vs_latent": nullable(RHO),
                      "walk_vs_latent_slope": nullable(RHO), "walk_vs_region": nullable(RHO),
                      "latent_vs_region": nullable(RHO), "walk_vs_region_by_method": mapping(nullable(RHO)),
                      "statement": STR}),
})

SUMMARY: Schema = obj({
    "schema_version": {"type": "integer"},
    "classifier": obj({"name": {"type": "string"}, "path": STR, "sha256": STR, "kind": STR, "differentiable": BOOL,
                       "positive_class": STR, "threshold": NUM, "head": STR, "card": mapping({})},
                      required=("name",)),
    "generator": obj({"name": STR, "fingerprint": STR, "resolution": INT}),
    "bank": obj({"name": STR, "path": STR, "hash": STR, "subspaces": array(BANK_SUBSPACE)}),
    "settings": mapping({}),
    "verdict": STR,
    "drivers": array(DRIVER),
    "walk_strips": mapping(array(STRIP)),
    "counterfactuals": COUNTERFACTUALS,
    "fairness": FAIRNESS,
    "validity": VALIDITY,
    "baselines": BASELINES,
    "provenance": mapping({}),
}, required=("schema_version", "drivers", "provenance"))  # the minimum a report can be made from
