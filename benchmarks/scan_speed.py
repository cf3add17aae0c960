"""Scan speed on real code: the floor (tree-sitter parse + function extraction) and each bundle's full scan of
the same files, side by side in one run; functions/s and peak memory (each measurement in its own process).

    python benchmarks/scan_speed.py --src /work/kernel/linux-source-6.1 --dirs kernel/sched net/ipv4 \
        --bundle lexical=/tmp/b_lexical --bundle fusion=/tmp/b_fusion --out benchmarks/results/scan_speed

Before and after, side by side: a bundle named ``NAME@sklearn=PATH`` is scanned with scikit-learn's own char
n-gram counting instead of the project's numpy counter (models/char_ngrams.py); one named ``NAME@before=PATH``
with the source given by ``--before-src`` (a checkout of an earlier commit, e.g. ``git worktree add``).
One named ``NAME@fp32=PATH`` runs its neural forward passes in fp32 (the others: ``auto``, bf16 where the CPU has
it).

Writes OUT.json and OUT.md (command, machine, commit, load averages: the machine may be shared).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def _one(args: argparse.Namespace) -> None:
    """Child: one measurement, printed as JSON."""
    import torch
    torch.set_num_threads(args.threads)
    from streamguard.data.extract import extract_functions, iter_c_files
    paths = [Path(args.src) / d for d in args.dirs]
    cpu0 = os.times()
    t0 = time.perf_counter()
    if args.one == "floor":
        files = n = 0
        for f in iter_c_files(paths, root=args.src):
            if f.data is not None:
                files += 1
                n += len(extract_functions(f.data, f.path))
        out = {"functions": n, "files": files}
    else:
        import streamguard
        if args.sklearn_counting:
            from streamguard.models import char_ngrams
            char_ngrams.supports = lambda vec: False  # every view takes scikit-learn's transform
        with streamguard.load(args.one, workers=args.workers, precision=args.precision) as det:
            t_load = time.perf_counter() - t0
            rep = det.scan(paths, root=args.src, evidence=0)
        s = rep.summary()
        out = {"functions": s["functions_scored"], "files": s["files_scanned"], "load_s": round(t_load, 2),
               "rejected": s["functions_rejected"], "skipped": s["skipped_by_reason"], "vulnerable": s["vulnerable"]}
    out["seconds"] = round(time.perf_counter() - t0, 2)
    t = os.times()  # CPU time of this process and its reaped workers: less sensitive to other jobs than wall time
    out["cpu_seconds"] = round(t.user + t.system - cpu0.user - cpu0.system + t.children_user + t.children_system, 2)
    import resource
    out["peak_rss_mb_main"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    # featurizing workers have exited and been reaped by now: the largest one's peak
    out["peak_rss_mb_worker"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    workers = args.workers if args.one != "floor" else 0
    out["peak_rss_mb_total_bound"] = round(out["peak_rss_mb_main"] + workers * out["peak_rss_mb_worker"], 1)
    print(json.dumps(out))


def _measure(name: str, target: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--one", target, "--src", args.src, "--dirs", *args.dirs,
           "--workers", str(args.workers), "--threads", str(args.threads)]
    cmd += ["--sklearn-counting"] if name.endswith("@sklearn") else []
    cmd += ["--precision", "fp32"] if name.endswith("@fp32") else []
    env = dict(os.environ)
    if name.endswith("@before"):
        env["PYTHONPATH"] = str(Path(args.before_src) / "src")
    load_before = os.getloadavg()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, env=env).stdout
    res = json.loads(out.strip().splitlines()[-1])
    res.update({"name": name, "target": target, "load_avg_before": [round(x, 2) for x in load_before],
                "load_avg_after": [round(x, 2) for x in os.getloadavg()]})
    res["functions_per_s"] = round(res["functions"] / res["seconds"], 1)
    res["functions_per_cpu_s"] = round(res["functions"] / max(res["cpu_seconds"], 1e-9), 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--dirs", nargs="+", required=True)
    ap.add_argument("--bundle", action="append", default=[], help="name=path")
    ap.add_argument("--out", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one", default=None)
    ap.add_argument("--sklearn-counting", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--before-src", default=None, help="checkout whose src/ the NAME@before rows run")
    ap.add_argument("--repeats", type=int, default=1, help="measure each row this many times; the median is shown")
    args = ap.parse_args()
    if args.one:
        _one(args)
        return
    targets = [("floor", "floor"), *(b.split("=", 1) for b in args.bundle)]
    runs: dict[str, list[dict]] = {name: [] for name, _ in targets}
    for _ in range(args.repeats):  # round robin: a drift in the machine's load touches every row alike
        for name, target in targets:
            runs[name].append(_measure(name, target, args))
            print(json.dumps(runs[name][-1]), file=sys.stderr)
    rows = [_median(runs[name]) for name, _ in targets]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit,
              "machine": {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
        Path(args.out + ".md").write_text(_markdown(result))
    print(_markdown(result))


def _median(runs: list[dict]) -> dict:
    """The run of median wall time (the lower middle of an even count), with every run's times beside it."""
    row = dict(sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2])
    row.update(runs=len(runs), seconds_all=[r["seconds"] for r in runs],
               cpu_seconds_all=[r["cpu_seconds"] for r in runs])
    return row


def _markdown(r: dict) -> str:
    floor = r["rows"][0]
    lines = ["# Scan speed on real code (floor = tree-sitter parse + function extraction of the same files)", "",
             f"Command: `{r['command']}`  ", f"Commit {r['commit'][:12]}, {r['date']}; {r['machine']['cpu']}, "
             f"{r['machine']['cores']} cores. **The machine was shared with other jobs: see the load averages; "
             "timings are under contention and are upper bounds.**", "",
             "Peak memory: the scanning process's own peak, plus (bound) workers x the largest worker's peak.", "",
             "CPU seconds (user + system, the process and its featurizing workers) depend less on the other jobs; "
             "on an idle machine with 2 cores, wall time would be about CPU seconds / 2 at best.", "",
             f"Each row is the median of {r['rows'][0]['runs']} runs by wall time (every run's times are in the "
             "JSON).", "",
             "| what | files | functions | wall s | functions/s (wall) | x floor (wall) | CPU s | functions per CPU s "
             "| x floor (CPU) | peak RSS MB main / worker / total bound | load avg before -> after (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['name']} | {row['files']} | {row['functions']} | {row['seconds']} | "
                     f"{row['functions_per_s']} | {row['seconds'] / floor['seconds']:.1f} | {row['cpu_seconds']} | "
                     f"{row['functions_per_cpu_s']} | {row['cpu_seconds'] / floor['cpu_seconds']:.1f} | "
                     f"{row['peak_rss_mb_main']} / {row['peak_rss_mb_worker']} / {row['peak_rss_mb_total_bound']} | "
                     f"{row['load_avg_before'][0]} -> {row['load_avg_after'][0]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
