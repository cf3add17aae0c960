"""Temperature scaling vs isotonic regression (streamguard.evaluate.calibration), both fitted on a trained run's
validation predictions, measured on Devign's official test split and on held-out collected data that no Devign
model trained on: Big-Vul rows outside Devign's projects (FFmpeg, QEMU) and ReVeal's Chromium rows (label
conflicts left out; a seeded sample of each). ECE (15 bins) and Brier score before and after, plus how many test
verdicts would flip if the threshold were compared on the calibrated scale instead of the raw one.

    python benchmarks/calibration.py --run RUN --data PROCESSED_DIR \
        --bigvul /work/shared/data/collected/bigvul_subset/all.jsonl \
        --reveal /work/shared/data/collected/reveal_chrome/all.jsonl --out benchmarks/results/calibration
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads thrash on shared cores

import numpy as np

import streamguard
from streamguard.evaluate import calibration as cal
from streamguard.rundir import RunDir
from streamguard.scan.bundle import export_run

DEVIGN_PROJECTS = {"ffmpeg", "qemu"}


def _held_out(path: Path, limit: int, seed: int) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if str(r.get("project", "")).lower() not in DEVIGN_PROJECTS and not r.get("label_conflict")]
    return random.Random(seed).sample(rows, limit) if limit and len(rows) > limit else rows


def _measure(c: cal.Calibration, p: np.ndarray, y: np.ndarray) -> dict:
    out = {"n": len(p), "base_rate": round(float(y.mean()), 4)}
    for m in ("raw", *cal.METHODS):
        q = p if m == "raw" else c.apply(p, m)
        out[m] = {"ece": round(cal.ece(q, y), 4), "brier": round(cal.brier(q, y), 4),
                  "reliability": cal.reliability(q, y)}
    return out


def _flips(c: cal.Calibration, p: np.ndarray, threshold: float) -> dict:
    """Verdicts that would change if the cut were compared on the calibrated scale (scan compares raw)."""
    raw = p >= threshold
    return {m: int(np.sum(raw != (c.apply(p, m) >= c.apply([threshold], m)[0]))) for m in cal.METHODS}


def _plot(sets: dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(sets), figsize=(4.6 * len(sets), 4.4), sharey=True, squeeze=False)
    for ax, (name, s) in zip(axes[0], sets.items()):
        for m, style in (("raw", "o-"), ("temperature", "s-"), ("isotonic", "^-")):
            rel = s[m]["reliability"]
            ax.plot(rel["mean_score"], rel["positive_share"], style, ms=4, label=f"{m} (ECE {s[m]['ece']:.3f})")
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.set(title=f"{name} (n={s['n']}, {100 * s['base_rate']:.0f}% vulnerable)", xlim=(0, 1), ylim=(0, 1),
               xlabel="mean score in bin (15 bins)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0][0].set_ylabel("share vulnerable")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _markdown(r: dict, png: str) -> str:
    g = r["git"]
    lines = [f"# Calibration: temperature scaling vs isotonic regression ({r['model']})", "",
             f"- Command: `{r['command']}`", f"- Machine: {r['machine']}; {r['seconds']} s",
             f"- Commit: {g['commit']} ({'clean' if g['clean'] else 'DIRTY'}); date {r['date']}",
             f"- Run: `{r['run']}`; fitted on its valid predictions: T = {r['temperature']:.4f}, isotonic "
             f"{r['isotonic_breakpoints']} breakpoints; threshold {r['threshold']:.4f} (raw)",
             "- ECE: 15 equal-width bins. Held-out rows: no Devign project (FFmpeg, QEMU), no label conflicts, "
             "a seeded sample; scored through the exported bundle.", "",
             "| set | n | vulnerable | ECE raw | ECE temperature | ECE isotonic | Brier raw | Brier temperature "
             "| Brier isotonic |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in r["sets"].items():
        lines.append(f"| {name} | {s['n']} | {100 * s['base_rate']:.1f}% | "
                     + " | ".join(f"{s[m][k]:.4f}" for k in ("ece", "brier") for m in ("raw", *cal.METHODS)) + " |")
    flips = r["verdict_flips_on_test_if_cut_on_calibrated_scale"]
    lines += ["", f"Test verdicts that would flip if the threshold were compared on the calibrated scale: "
              f"temperature {flips['temperature']}, isotonic {flips['isotonic']} (scan compares the raw score: 0).",
              "", f"![reliability diagrams]({png})", ""]
    return "\n".join(lines)


def _git() -> dict:
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip())
    return {"commit": head, "clean": not dirty}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, help="the run's processed data dir (for the export)")
    ap.add_argument("--bigvul", type=Path)
    ap.add_argument("--reveal", type=Path)
    ap.add_argument("--limit", type=int, default=2000, help="functions sampled per held-out set (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json, OUT.md and OUT.png")
    args = ap.parse_args()
    t0 = time.perf_counter()
    run = RunDir(args.run)
    valid, test = run.read_predictions("valid"), run.read_predictions("test")
    c = cal.fit_rows(valid, test)

    def arr(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([r["prob_vulnerable"] for r in rows]), np.array([int(r["label"]) for r in rows])

    sets = {"Devign valid (fitted on)": _measure(c, *arr(valid)), "Devign test": _measure(c, *arr(test))}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = export_run(args.run, Path(tmp) / "bundle", args.data)
        with streamguard.load(bundle) as det:
            threshold = det.threshold
            for name, path in (("Big-Vul held out", args.bigvul), ("ReVeal Chromium", args.reveal)):
                if path is None:
                    continue
                rows = _held_out(path, args.limit, args.seed)
                scores = det.score([r["func"] for r in rows])
                keep = [i for i, s in enumerate(scores) if not np.isnan(s.raw_prob or np.nan)]
                p = np.array([scores[i].raw_prob for i in keep])
                y = np.array([int(rows[i]["target"]) for i in keep])
                sets[name] = {**_measure(c, p, y), "not_scored": len(rows) - len(keep)}
                print(name, len(keep), f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    exp = run.read_exp()
    result = {"command": " ".join(["python", *sys.argv]), "run": str(args.run), "model": exp["model"],
              "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "git": _git(),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
                         "(2-core AMD EPYC VM shared with other jobs)",
              "temperature": c.temperature, "isotonic_breakpoints": len(c.iso_x), "threshold": threshold,
              "verdict_flips_on_test_if_cut_on_calibrated_scale": _flips(c, arr(test)[0], threshold),
              "seconds": round(time.perf_counter() - t0, 1), "sets": sets}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(sets, args.out.with_suffix(".png"))
    args.out.with_suffix(".md").write_text(_markdown(result, args.out.with_suffix(".png").name))
    for name, s in sets.items():
        print(f"{name}: " + ", ".join(f"{m} ECE {s[m]['ece']:.4f} Brier {s[m]['brier']:.4f}"
                                      for m in ("raw", *cal.METHODS)))


if __name__ == "__main__":
    main()
