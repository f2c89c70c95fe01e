"""Print a bank's validation as a markdown table (pasted into docs/bank.md).

    python benchmarks/bank_table.py subspace_bank/demo

Reads manifest.json only: per shipped subspace its rank, unit, own effect, worst
leakage, pixel drift outside its region; then the subspaces the build rejected or
skipped, with the build's reasons; then, for banks validated with a truth reader
(`--truth facelab`), the true-factor confusion matrix: |change of each true factor|
per unit, in SDs of that factor across the validation faces (columns: every factor
some subspace is meant to move, plus any other that reaches 0.25 somewhere).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from iceaudit.bank.manifold import ManifoldSettings


def main(bank_dir: str) -> None:
    m = json.loads((Path(bank_dir) / "manifest.json").read_text())
    print(f"Bank `{m['name']}`, generator {m['generator_fingerprint'][:12]}…, built in "
          f"{m['meta'].get('build_seconds', float('nan')):.0f} s; faces {m['meta'].get('faces')}.\n")
    print("| id | tags | space × rank | method | unit | own effect (SD/unit) | worst leakage (SD/unit) | drift outside (/unit) |")
    print("|---|---|---|---|---|---:|---|---:|")
    for s in m["subspaces"]:
        v = s.get("validation", {})
        leak = v.get("leakage", {})
        worst = max(leak, key=leak.get) if leak else None
        over = v.get("threshold_overrides")
        note = f" (allowed {over['values']['max_leakage']}: {over['reason']})" if over and "max_leakage" in over["values"] else ""
        print(f"| `{s['id']}` | {', '.join(s['tags'])} | {s['space']} {s['dim']} × {s['rank']} | {s['method']} | {s['unit']} | "
              f"{v.get('own_effect', float('nan')):.2f} | {leak.get(worst, 0):.2f} onto {worst}{note} | "
              f"{v.get('drift_outside', float('nan')):.3f} |")
    _confusion(m)
    _valid_ranges(m)
    for kind in ("rejected", "skipped"):
        for sid, why in m["meta"].get(kind, {}).items():
            print(f"\n{kind}: `{sid}`: {why if isinstance(why, str) else '; '.join(why)}")


def _confusion(m: dict) -> None:
    rows = [s for s in m["subspaces"] if "truth" in s.get("validation", {})]
    if not rows:
        return
    intended = [s["validation"].get("truth_factor") for s in rows]
    factors = list(rows[0]["validation"]["truth"])
    cols = [f for f in factors if f in intended or any(abs(s["validation"]["truth"][f]) >= 0.25 for s in rows)]
    print("\nTrue-factor confusion matrix: |Δ factor| per unit in SDs of the factor (bold: the factor the "
          "recipe intends; the largest of each row must be it).\n")
    print("| subspace | " + " | ".join(cols) + " | leads |")
    print("|---|" + "---:|" * len(cols) + "---|")
    for s, want in zip(rows, intended):
        t = s["validation"]["truth"]
        cells = [f"**{abs(t[c]):.2f}**" if c == want else f"{abs(t[c]):.2f}" for c in cols]
        lead = s["validation"].get("truth_lead")
        verdict = "(no factor intended)" if want is None else ("yes" if lead == want else f"NO ({lead})")
        print(f"| `{s['id']}` | " + " | ".join(cells) + f" | {verdict} |")


def _valid_ranges(m: dict) -> None:
    rows = [s for s in m["subspaces"] if "manifold" in s.get("validation", {})]
    if not rows:
        return
    print("\nValid ranges: share of the walked faces off the sampled faces at the ends of the stored step "
          "range, the own measure's response over the last step at each end (SD/unit), what ended each side "
          "(image: off the faces; response: stopped moving its measure; end: the stored range).\n")
    print("| subspace | step range | off at low end | off at high end | response at low end | response at high end "
          "| valid range | low side ended by | high side ended by |")
    print("|---|---|---:|---:|---:|---:|---|---|---|")
    st = ManifoldSettings(**(m["meta"].get("manifold") or {}))  # the bounds the build applied
    for s in rows:
        ev = s["validation"]["manifold"]
        alphas, off, resp = ev["alphas"], ev["off_share"], ev.get("own_response")
        lo, hi = s["valid_range"]

        def ended(edge: float, outward: int) -> str:
            nxt = [a for a in alphas if (a - edge) * outward > 0]
            if not nxt:
                return "end"
            a = min(nxt, key=lambda x: abs(x - edge))
            i = alphas.index(a)
            if off[i] > st.max_off_share:
                return "image"
            return "response" if resp is not None and resp[i] < st.min_response else "image"

        r = (lambda i: "–" if resp is None else f"{resp[i]:+.2f}")
        print(f"| `{s['id']}` | {s['step_range'][0]:+g} .. {s['step_range'][1]:+g} | {off[0]:.0%} | {off[-1]:.0%} | "
              f"{r(0)} | {r(-1)} | {lo:+g} .. {hi:+g} | {ended(lo, -1)} | {ended(hi, 1)} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "subspace_bank/demo")
