"""Baselines against the FaceLab oracle: the docs/validation.md table.

For each planted classifier, given its `run_baselines` result and the oracle's
effect of every true factor (intervene on one factor in the renderer, measure
the score), the row says:

- region:  the top region of the pixel method (feature_ablation) vs the
           region of the oracle's top factor, and Spearman between region
           scores and oracle effects (each factor read through its region);
- latent:  the top subspace of latent attribution vs the subspace that names
           the oracle's top factor, and Spearman over factors that have one;
- AttFind: the top channel's best bank match and region vs the oracle's top
           factor, and its sufficiency.

    PYTHONPATH=. python benchmarks/validate_baselines.py   # needs the FaceLab demo world

`oracle_rows` and `markdown_table` are pure functions (tested in
tests/test_baselines.py on a constructed world); `load_demo_world` loads the
FaceLab world (demo generator, subspace_bank/demo, parser, planted
classifiers, oracle) and exits with a message naming whatever is missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from iceaudit.audit.agreement import spearman
from iceaudit.record import Baselines


@dataclass
class PlantedClassifier:
    name: str
    score_fn: Callable
    threshold: float
    oracle: dict[str, float]  # factor -> |score change| under the oracle's intervention


@dataclass
class DemoWorld:
    generator: Any
    bank: Any
    parser: Any  # callable images -> [N, R, R] label ids, with .labels
    classifiers: list[PlantedClassifier]
    factor_subspace: dict[str, str]  # true factor -> bank subspace id that names it
    factor_region: dict[str, str]  # true factor -> parser region it acts on most


def _top(scores: Mapping[str, float]) -> str | None:
    return max(scores, key=lambda k: scores[k]) if scores else None


def oracle_row(name: str, result: Baselines, oracle: Mapping[str, float],
               factor_subspace: Mapping[str, str], factor_region: Mapping[str, str],
               pixel_method: str = "feature_ablation") -> dict[str, Any]:
    """One table row: how the baselines of one classifier compare with its oracle."""
    top_factor = _top(oracle)
    row: dict[str, Any] = {"classifier": name, "oracle_top_factor": top_factor}

    entry = result.pixel.get(pixel_method)
    regions = (entry.regions if entry else None) or {}
    key = "abs_importance" if pixel_method == "feature_ablation" else "ratio"
    region_scores = {r: v[key] for r, v in regions.items()}
    row["region_top"] = _top(region_scores)
    row["region_match"] = top_factor is not None and row["region_top"] == factor_region.get(top_factor)
    by_factor = {f: region_scores[factor_region[f]] for f in oracle if factor_region.get(f) in region_scores}
    row["region_rho"] = spearman(by_factor, oracle)["rho"]

    latent = (result.latent.subspaces if result.latent else None) or {}
    lat_scores = {sid: v.abs_attribution for sid, v in latent.items()}
    row["latent_top"] = _top(lat_scores)
    row["latent_match"] = top_factor is not None and row["latent_top"] == factor_subspace.get(top_factor)
    by_factor = {f: lat_scores[factor_subspace[f]] for f in oracle if factor_subspace.get(f) in lat_scores}
    row["latent_rho"] = spearman(by_factor, oracle)["rho"]

    att = result.attfind
    channels = (att.channels if att else None) or []
    classes = (att.classes if att else None) or {}
    firsts = [c.top[0] for c in classes.values() if c.top]
    strongest = max(firsts, key=lambda p: p.mean_effect).channel if firsts else None
    chosen = next((c for c in channels if c.channel == strongest), None)
    row["attfind_top_channel"] = strongest
    row["attfind_top_match"] = chosen.best_match.subspace if chosen and chosen.explained_by_bank and chosen.best_match else None
    row["attfind_top_region"] = chosen.region if chosen else None
    row["attfind_match"] = bool(chosen) and top_factor is not None and (
        row["attfind_top_match"] == factor_subspace.get(top_factor) or row["attfind_top_region"] == factor_region.get(top_factor)
    )
    row["attfind_sufficiency"] = max((c.sufficiency for c in classes.values()), default=0.0)
    return row


def oracle_rows(results: Mapping[str, Baselines], oracles: Mapping[str, Mapping[str, float]],
                factor_subspace: Mapping[str, str], factor_region: Mapping[str, str]) -> list[dict[str, Any]]:
    return [oracle_row(n, results[n], oracles[n], factor_subspace, factor_region) for n in results]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    def f(x: Any) -> str:
        if x is None:
            return "–"
        if isinstance(x, bool):
            return "yes" if x else "no"
        if isinstance(x, float):
            return f"{x:.2f}"
        return str(x)

    cols = [
        ("classifier", "classifier"), ("oracle_top_factor", "oracle top factor"),
        ("region_top", "top region (FA)"), ("region_match", "= oracle"), ("region_rho", "ρ region vs oracle"),
        ("latent_top", "top subspace (latent IG)"), ("latent_match", "= oracle"), ("latent_rho", "ρ latent vs oracle"),
        ("attfind_top_channel", "AttFind top channel"), ("attfind_top_match", "matched subspace"),
        ("attfind_top_region", "region"), ("attfind_match", "= oracle"), ("attfind_sufficiency", "sufficiency"),
    ]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines)


ROOT = Path(__file__).resolve().parents[1]


class _Parser:
    """The FaceLab parser under the parser contract: images -> label ids [N, R, R], `labels`."""

    def __init__(self, net: Any, labels: Sequence[str]) -> None:
        self.net, self.labels = net, list(labels)

    def __call__(self, images):
        return self.net.labels(images).long()


def load_demo_world(n_oracle: int = 128, names: Sequence[str] | None = None) -> DemoWorld:
    """The FaceLab demo world: demo generator, its bank (subspace_bank/demo), the demo
    parser, the planted classifiers with their oracle (mean |score change| per true
    factor), factor -> subspace (the facelab recipe's `truth_factor`) and factor ->
    region (the factor's first part). Exits with a message naming what is missing."""
    import tomllib

    from iceaudit.audit.classifier import load_card, load_classifier
    from iceaudit.bank.format import load_bank
    from iceaudit.errors import UserError
    from iceaudit.facelab import factors as fl
    from iceaudit.facelab.analysis import load_parser
    from iceaudit.facelab.oracle import oracle_many
    from iceaudit.facelab.render import LABEL_NAMES
    from iceaudit.stylegan2.loaders import load_generator

    recipe = ROOT / "iceaudit" / "bank" / "recipes" / "facelab.toml"
    planted_dir = ROOT / "examples" / "facelab"
    names = list(names or ("smiling", "smiling_skin_shortcut", "eyeglasses_background_shortcut", "random_init"))
    try:
        G = load_generator("demo")
        bank = load_bank(ROOT / "subspace_bank" / "demo")
        parser = _Parser(load_parser(), LABEL_NAMES)
        planted = {n: load_classifier(planted_dir / f"{n}.pt", load_card(planted_dir / f"{n}.toml")) for n in names}
        truth = tomllib.loads(recipe.read_text())["subspace"]
    except (UserError, FileNotFoundError, OSError) as err:
        raise SystemExit(f"the FaceLab demo world is incomplete: {err}") from None
    oracle = oracle_many({n: c.decision_score for n, c in planted.items()}, n=n_oracle)
    classifiers = [
        PlantedClassifier(n, c.decision_score, c.threshold, {row.factor: row.mean_abs_delta for row in oracle[n]})
        for n, c in planted.items()
    ]
    factor_subspace = {t["truth_factor"]: t["id"] for t in truth if t.get("truth_factor") and t["id"] in bank.ids}
    factor_region = {f.name: f.parts[0] for f in fl.FACTORS if f.parts}
    return DemoWorld(G, bank, parser, classifiers, factor_subspace, factor_region)


def main() -> None:
    import torch

    from iceaudit.audit.baselines import run_baselines

    import argparse

    ap = argparse.ArgumentParser(description="Baselines vs the FaceLab oracle (docs/validation.md).")
    ap.add_argument("--faces", type=int, default=32)
    ap.add_argument("--oracle-faces", type=int, default=128)
    ap.add_argument("--methods", default="feature_ablation,latent,attfind")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    world = load_demo_world(args.oracle_faces)
    G = world.generator.eval().requires_grad_(False)
    with torch.no_grad():
        ws = G.mapping(torch.randn(args.faces, G.z_dim, generator=torch.Generator().manual_seed(0)))
    results, oracles = {}, {}
    for pc in world.classifiers:
        results[pc.name] = run_baselines(pc.score_fn, G, ws, world.bank, world.parser, args.methods, None,
                                         threshold=pc.threshold)
        oracles[pc.name] = pc.oracle
    print(markdown_table(oracle_rows(results, oracles, world.factor_subspace, world.factor_region)))


if __name__ == "__main__":
    main()
