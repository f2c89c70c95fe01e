"""Print a bank's validation as a markdown table (pasted into docs/bank.md).

    python benchmarks/bank_table.py subspace_bank/demo

Reads manifest.json only: per shipped subspace its rank, unit, own effect, worst
leakage, pixel drift outside its region; then the subspaces the build rejected or
skipped, with the build's reasons.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


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
    for kind in ("rejected", "skipped"):
        for sid, why in m["meta"].get(kind, {}).items():
            print(f"\n{kind}: `{sid}`: {why if isinstance(why, str) else '; '.join(why)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "subspace_bank/demo")
