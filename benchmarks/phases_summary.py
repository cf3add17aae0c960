"""Summarise a finished phase comparison (configs/pipeline-phases.yaml) into benchmarks/results/phases.json.

    python benchmarks/phases_summary.py --report reports/phases/lexical --denoise runs/phases/phase2/denoise \
        --log /tmp/phases.log [--log /tmp/phases2.log] --command "..."

Keeps the numbers of compare.json that the results page quotes, the denoise counts (flagged per source and
label), the pipeline's step times (from its log), the machine and the git commit.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lexical_devign import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _brief(s: dict) -> dict:
    keep = {}
    for m, v in {**s["metrics"], **({"pair_accuracy": s["pair_accuracy"]} if "pair_accuracy" in s else {})}.items():
        keep[m] = {"a_mean": v["a_mean"], "b_mean": v["b_mean"], "difference": v["bootstrap"]["difference"],
                   "ci": v["bootstrap"]["ci"], "p_bootstrap": v["bootstrap"]["p_value"],
                   "p_t": v["seeds"]["t_test"].get("p_value"), "p_wilcoxon": v["seeds"]["wilcoxon"].get("p_value"),
                   "p_mcnemar": (v.get("mcnemar_majority_vote") or {}).get("p_value"), "d_z": v["effect_size_dz"],
                   "a_per_seed": v["a_per_seed"], "b_per_seed": v["b_per_seed"]}
    return {"n_items": s["n_items"], "metrics": keep, **{k: s[k] for k in ("by_source", "by_project") if k in s}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--denoise", type=Path, required=True)
    ap.add_argument("--log", type=Path, action="append", default=[])
    ap.add_argument("--command", default="")
    a = ap.parse_args()
    res = json.loads((a.report / "compare.json").read_text())
    den = json.loads((a.denoise / "denoise.json").read_text())
    issues = [json.loads(x) for x in (a.denoise / "label_issues.jsonl").read_text().splitlines()]
    steps = {}
    for log in a.log:
        for line in log.read_text().splitlines():
            if line.startswith("[pipeline] ") and "; total " in line:
                # one entry per pipeline call: a resumed call reports only what it ran itself
                steps[log.name] = {m.group(1): float(m.group(2)) for m in re.finditer(r"([\w-]+) (\d+)s", line)}
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = {"command": a.command, "machine": machine(), "git_commit": git, "step_seconds": steps,
           "verdict": res["verdict"], "seeds": {"a": sorted(res["a"]["runs"]), "b": sorted(res["b"]["runs"])},
           "sets": {k: _brief(v) for k, v in res["sets"].items()},
           "labels": {"balance": {k: v["all"] for k, v in res["labels"]["balance"].items()},
                      "flagged": res["labels"]["flagged"]},
           "denoise": {k: den[k] for k in ("n_train", "n_flagged", "flagged_share", "flagged_by_label", "n_hard",
                                           "weights", "mode")},
           "denoise_flagged_by_source_label": {f"{s}/{lab}": n for (s, lab), n in
                                               Counter((i["source"], i["label"]) for i in issues).items()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "phases.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("verdict", "step_seconds", "denoise")}, indent=1))


if __name__ == "__main__":
    main()
