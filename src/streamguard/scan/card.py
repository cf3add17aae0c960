"""The short model card written into every bundle: data, metrics with 95% bootstrap CIs, threshold, calibration,
limits."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from streamguard.evaluate.calibration import Calibration
from streamguard.evaluate.metrics import bootstrap_distribution, percentile_ci, point_metrics, resample_weights
from streamguard.rundir import RunDir

LIMITS = """\
## Limits
- Trained on Devign-style data (functions from FFmpeg and QEMU, labelled by vulnerability-fixing commits):
  a score says how much a function resembles the vulnerable functions of that data, not that a bug exists.
  Expect many false positives and misses on other code bases; use it to rank code for review, never as proof.
- One function at a time: no macros, headers, callers or data flow across functions are seen.
- The transformer reads at most its token budget (risky regions kept by the trimmer); longer functions are
  judged on that window.
- Line evidence shows what moved this model's score, not where a bug is.
"""


def _metrics(run: Path, threshold: float) -> tuple[str, dict[str, Any]]:
    if not RunDir(run).has_predictions("test"):
        return "No test predictions were recorded for this run.\n", {}
    rows = RunDir(run).read_predictions("test")
    y = np.array([int(r["label"]) for r in rows])
    s = np.array([float(r["prob_vulnerable"]) for r in rows])
    point = point_metrics(y, s, threshold)
    dist = bootstrap_distribution(resample_weights(len(y), 1000, 0), y, s, s >= threshold, 0.005)
    lines = [f"Test split of the training data, {len(y)} functions, threshold {threshold:.4f} "
             "(chosen on valid); 95% bootstrap CIs (1,000 resamples).", "", "| metric | value | 95% CI |",
             "|---|---|---|"]
    for m in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        lo, hi = percentile_ci(dist[m])
        ci = f"[{lo:.3f}, {hi:.3f}]" if lo is not None else "n/a"
        lines.append(f"| {m} | {point[m]:.3f} | {ci} |")
    return "\n".join(lines) + "\n", point


def _calibration(cal: Calibration) -> str:
    if not cal.active:
        return f"Scores are not calibrated: {cal.stats.get('note', 'no calibration was fitted')}.\n"
    how = (f"temperature scaling (T = {cal.temperature:.3f}: `sigmoid(logit(p) / T)`)" if cal.method == "temperature"
           else f"isotonic regression ({len(cal.iso_x)} breakpoints)")
    lines = [f"Scores are calibrated probabilities: {how}, fitted on the validation predictions; the verdict "
             "still compares the raw score with the threshold above, so verdicts are those of the raw model.", "",
             f"| split | n | ECE raw | ECE {cal.method} | Brier raw | Brier {cal.method} |",
             "|---|---|---|---|---|---|"]
    for split in ("valid", "test"):
        s = cal.stats.get(split)
        if s:
            lines.append(f"| {split} | {s['n']} | {s['ece_raw']:.3f} | {s[f'ece_{cal.method}']:.3f} | "
                         f"{s['brier_raw']:.3f} | {s[f'brier_{cal.method}']:.3f} |")
    return "\n".join(lines) + "\n\nECE: expected calibration error, 15 equal-width bins.\n"


def model_card(run: Path, exp: dict[str, Any], info: dict[str, Any], cal: Calibration | None = None) -> str:
    table, _ = _metrics(run, info["threshold"])
    cal = cal or Calibration()
    shown = f" (calibrated: {cal.one(info['threshold']):.4f})" if cal.active else ""
    hyper = exp.get("hyperparameters") or {}
    data_files = ", ".join(sorted((exp.get("data_sha256") or {}).keys())) or "not recorded"
    kinds = info["kind"] + (f" of {', '.join(exp['base_models'])}" if exp.get("base_models") else "")  # a stack
    return "\n".join([
        f"# Model card: {info['name']}", "",
        f"- Kind: {kinds}",
        f"- Decision threshold: {info['threshold']:.4f} on the raw P(vulnerable){shown}, chosen on valid",
        f"- Exported: {info['created']} (bundle format {info['format']})",
        f"- Trained from: `{exp.get('data_dir')}` ({data_files}; sha256 in bundle.json)",
        f"- Seed: {exp.get('seed', hyper.get('seed'))}; git {(exp.get('git') or {}).get('commit', 'unknown')}",
        "", "## Metrics", "", table, "## Calibration", "", _calibration(cal), LIMITS,
        "## Use", "", "```", "streamguard scan src/ --model THIS_DIR --format sarif --out results.sarif", "```",
        "", "```python", "import streamguard", "detector = streamguard.load('THIS_DIR')",
        "print(detector.score('int f(char *s) { char b[8]; strcpy(b, s); return 0; }'))", "```", ""])
