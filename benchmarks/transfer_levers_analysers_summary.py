"""The table of benchmarks/transfer_levers_analysers.sh: per direction, lexical / analysers / their fusion on the
other project's test functions (accuracy at the valid threshold, ROC-AUC, 95% bootstrap CIs), the fusion's
weights, and the paired tests of the fusion against lexical.

    python benchmarks/transfer_levers_analysers_summary.py WORK_DIR benchmarks/results/transfer_levers_analysers
writes OUT.json (the figures) and prints the Markdown rows.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

DIRECTIONS = ("xp-FFmpeg-to-qemu", "xp-qemu-to-FFmpeg")
MODELS = ("lexical", "analysers", "fusion")


def _metric(entry: dict, name: str) -> dict:
    m = entry["test_at_valid_threshold"][name]
    return {"value": m["value"], "ci": m.get("ci")}


def direction(work: Path, name: str) -> dict:
    doc = json.loads((work / "reports" / name / "metrics.json").read_text())
    fusion = json.loads((work / "runs" / name / "fusion" / "fusion.json").read_text())
    out = {"models": {m: {k: _metric(doc["entries"][m], k) for k in ("accuracy", "roc_auc", "f1")}
                      for m in MODELS if m in doc["entries"]},
           "fusion_weights": dict(zip(fusion["models"], fusion["weights"])), "fusion_bias": fusion["bias"],
           "test_items": doc["test_items"], "test_vulnerable_share": doc["test_vulnerable_share"],
           "git": doc["environment"]["git"], "seconds": doc.get("seconds")}
    for pair in doc["paired"]:
        if {pair["a"], pair["b"]} == {"fusion", "lexical"}:
            out["fusion_vs_lexical"] = {"a": pair["a"], "b": pair["b"],
                                        "mcnemar_p": pair["mcnemar"]["p_value"],
                                        "bootstrap_accuracy": pair["bootstrap_accuracy"]}
    return out


def rows(name: str, d: dict) -> list[str]:
    def fmt(m: dict, pct: bool) -> str:
        v, ci = m["value"], m["ci"] or [float("nan")] * 2
        if pct:
            return f"{100 * v:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    arrow = name.removeprefix("xp-").replace("-to-", " -> ")
    return [f"| {arrow} | {m} | {fmt(d['models'][m]['accuracy'], True)} | {fmt(d['models'][m]['roc_auc'], False)} |"
            for m in MODELS if m in d["models"]]


def main() -> None:
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    result = {name: direction(work, name) for name in DIRECTIONS if (work / "reports" / name).is_dir()}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    for name, d in result.items():
        print("\n".join(rows(name, d)))
        print(f"weights {d['fusion_weights']}; fusion vs lexical {d.get('fusion_vs_lexical')}")


if __name__ == "__main__":
    main()
