"""Forward-pass precisions when scanning: the same bundles score Devign's official test functions through the scan
path (raw text -> featurize -> predict) once per precision (fp32, bf16, and the transformer on ONNX Runtime: onnx,
int8), the precisions taking turns ``--repeats`` times. Reports each bundle's test accuracy (at its own threshold)
and ROC-AUC under each, how far the scores move from fp32 (max and median |p - p_fp32|), how many verdicts flip,
and the median wall time of scoring: featurizing included (the scan path) and, with ``--forward``, excluded (the
kind's ``predict`` alone on the functions featurized once).

    python benchmarks/scan_precision.py --raw data/raw/devign/test.jsonl --bundle transformer=/tmp/b_transformer \
        --bundle gnn=/tmp/b_gnn --bundle fusion=/tmp/b_fusion --precisions fp32,bf16 \
        --out benchmarks/results/scan_precision
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads thrash on shared cores

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import streamguard
from streamguard.scan import PRECISIONS as KNOWN
from streamguard.scan.model import Scorer, native_bf16


def _score(bundle: str, precision: str, codes: list[str], workers: int) -> tuple[np.ndarray, float, float, float]:
    """Probabilities, the bundle's threshold, the seconds of loading (the first few functions: an ONNX graph is
    made then) and the wall seconds of scoring (loading excluded)."""
    t0 = time.perf_counter()
    with streamguard.load(bundle, workers=workers, precision=precision) as det:
        det.score(codes[:8])  # load the weights and start the featurizing pool outside the timing
        t1 = time.perf_counter()
        probs = np.array([s.raw_prob for s in det.score(codes)])
        return probs, det.threshold, t1 - t0, time.perf_counter() - t1


def _forward(bundle: str, precisions: list[str], codes: list[str], repeats: int, workers: int) -> dict:
    """Median seconds of the kind's ``predict`` alone per precision, on the functions featurized once."""
    det = streamguard.load(bundle, workers=workers, precision="fp32")
    scorer: Scorer = det._scorer
    recs = [(i, json.loads(line)) for i, (line, _) in enumerate(scorer.records(codes)) if line is not None]
    det.close()
    recs.sort(key=lambda r: len(r[1]["tokens"]))  # as Scorer.probabilities orders them
    seconds: dict[str, list[float]] = {p: [] for p in precisions}
    with tempfile.TemporaryDirectory(prefix="scan-precision-") as tmp:
        data = scorer._dataset(Path(tmp), [r for _, r in recs], [codes[i] for i, _ in recs])
        for _ in range(repeats):
            for precision in precisions:
                timed = Scorer(det.source, 1, precision)
                with timed._forward_passes():
                    timed._kind.predict(det.source.model_dir, data, "test")  # warm (an ONNX graph is made once)
                    t0 = time.perf_counter()
                    timed._kind.predict(det.source.model_dir, data, "test")
                    seconds[precision].append(round(time.perf_counter() - t0, 2))
    return {p: {"seconds_median": statistics.median(s), "seconds_all": s} for p, s in seconds.items()}


def measure(name: str, bundle: str, codes: list[str], labels: np.ndarray, precisions: list[str], repeats: int,
            workers: int, forward: bool) -> dict:
    probs: dict[str, np.ndarray] = {}
    seconds: dict[str, list[float]] = {p: [] for p in precisions}
    load: dict[str, list[float]] = {p: [] for p in precisions}
    threshold = 0.5
    for _ in range(repeats):
        for precision in precisions:
            probs[precision], threshold, ls, s = _score(bundle, precision, codes, workers)
            seconds[precision].append(round(s, 2))
            load[precision].append(round(ls, 2))
    row: dict = {"name": name, "bundle": bundle, "threshold": threshold}
    fwd = _forward(bundle, precisions, codes, repeats, workers) if forward else {}
    base, ref = probs[precisions[0]], precisions[0]
    for precision in precisions:
        p = probs[precision]
        delta = np.abs(p - base)
        med = statistics.median(seconds[precision])
        row[precision] = {"accuracy": round(float(((p >= threshold) == labels).mean()), 4),
                          "roc_auc": round(float(roc_auc_score(labels, p)), 4),
                          f"max_abs_delta_vs_{ref}": round(float(delta.max()), 5),
                          f"median_abs_delta_vs_{ref}": round(float(np.median(delta)), 6),
                          f"verdict_flips_vs_{ref}": int(((p >= threshold) != (base >= threshold)).sum()),
                          "seconds_median": med, "seconds_all": seconds[precision],
                          "functions_per_s": round(len(codes) / med, 1),
                          "first_load_seconds": load[precision][0], **({"forward": fwd[precision]} if fwd else {})}
        row[precision]["speedup"] = {q: round(statistics.median(seconds[q]) / med, 2) for q in precisions[:2]}
    return row


def markdown(res: dict) -> str:
    ref = res["precisions"][0]
    lines = ["# Scanning precisions (Devign's official test functions through the scan path)", "",
             f"Command: `{res['command']}`  ", f"Commit {res['commit'][:12]}, {res['date']}; {res['machine']['cpu']}, "
             f"{res['machine']['cores']} cores ({res['machine']['note']}), native bf16: "
             f"{res['machine']['native_bf16']}, torch {res['machine']['torch']}, onnxruntime "
             f"{res['machine']['onnxruntime']}. {res['functions']} functions; wall time of scoring them (featurizing "
             f"included, loading excluded), median of {res['repeats']}; 'forward' excludes featurizing.", "",
             f"| bundle | precision | accuracy | ROC-AUC | max / median abs. change vs {ref} | verdicts flipped | "
             "seconds (functions/s) | forward s | speed-up vs " + " / ".join(res["precisions"][:2]) +
             " | first load s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        for p in res["precisions"]:
            a = r[p]
            fwd = a.get("forward", {}).get("seconds_median", "-")
            lines.append(f"| {r['name']} | {p} | {a['accuracy']:.4f} | {a['roc_auc']:.4f} | "
                         f"{a[f'max_abs_delta_vs_{ref}']:.4f} / {a[f'median_abs_delta_vs_{ref}']:.5f} | "
                         f"{a[f'verdict_flips_vs_{ref}']} | {a['seconds_median']} ({a['functions_per_s']}) | {fwd} | "
                         + " / ".join(f"{v}x" for v in a["speedup"].values()) + f" | {a['first_load_seconds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", required=True, type=Path, help="CodeXGLUE jsonl (func, target), e.g. the test split")
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=PATH", help="a bundle (repeatable)")
    ap.add_argument("--precisions", default="fp32,bf16,onnx,int8",
                    help="comma-separated; the first is the reference (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per precision (default %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="featurizing processes (default %(default)s)")
    ap.add_argument("--forward", action="store_true", help="also time predict alone (featurizing excluded)")
    ap.add_argument("--note", default="shared with other jobs", help="the machine's state, for the result file")
    ap.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args()
    precisions = args.precisions.split(",")
    if not set(precisions) <= set(KNOWN) - {"auto"}:
        ap.error(f"--precisions: each one of {', '.join(KNOWN[1:])}")
    torch.set_num_threads(2)
    rows = [json.loads(x) for x in args.raw.read_text().splitlines() if x.strip()]
    codes, labels = [r["func"] for r in rows], np.array([int(r["target"]) for r in rows])
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    res = {"command": " ".join(["python", *sys.argv]), "commit": commit,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "functions": len(codes),
           "repeats": args.repeats, "precisions": precisions,
           "machine": {"cpu": cpu, "cores": os.cpu_count(), "note": args.note, "native_bf16": native_bf16(),
                       "torch": torch.__version__, "onnxruntime": ort_version, "load_1min": os.getloadavg()[0]},
           "rows": [measure(*b.split("=", 1), codes, labels, precisions, args.repeats, args.workers, args.forward)
                    for b in args.bundle]}
    res["machine"]["load_1min_end"] = os.getloadavg()[0]
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(res, indent=2) + "\n")
        Path(args.out + ".md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
