"""Scan speed on real code: the floor (tree-sitter parse + function extraction) and each bundle's full scan of
the same files, side by side in one run; functions/s and peak memory (each measurement in its own process).

    python benchmarks/scan_speed.py --src /work/kernel/linux-source-6.1 --dirs kernel/sched net/ipv4 \
        --bundle lexical=/tmp/b_lexical --bundle fusion=/tmp/b_fusion --out benchmarks/results/scan_speed

Before and after, side by side: a bundle named ``NAME@sklearn=PATH`` is scanned with scikit-learn's own char
n-gram counting instead of the project's numpy counter (models/char_ngrams.py); one named ``NAME@before=PATH``
with the source given by ``--before-src`` (a checkout of an earlier commit, e.g. ``git worktree add``).
One named ``NAME@fp32=PATH`` runs its neural forward passes in fp32 (the others: ``auto``, bf16 where the CPU has
it), ``NAME@onnx`` / ``NAME@int8`` on ONNX Runtime (fp32 / int8 dynamic quantisation); ``NAME@jobs1=PATH`` scans
with one process (the others: ``--workers``); ``NAME@cache=PATH`` is a rescan with
``--cache`` filled by an untimed scan just before. ``--peers cppcheck,flawfinder`` adds each peer tool's run
on the same folders (whole files, as a user runs it; their executables beside this Python or on PATH).

Peak memory: the child's whole process tree (the scan and its workers), sampled every 20 ms with psutil.

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

PRECISION_SUFFIXES = ("fp32", "bf16", "onnx", "int8")  # NAME@<precision>: scan --precision <precision>


def _one(args: argparse.Namespace) -> None:
    """Child: one measurement, printed as JSON (torch, where a bundle loads it, takes OMP_NUM_THREADS)."""
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
            rep = det.scan(paths, root=args.src, evidence=0, **({"cache": args.cache} if args.cache else {}))
        s = rep.summary()
        out = {"functions": s["functions_scored"], "files": s["files_scanned"], "load_s": round(t_load, 2),
               "rejected": s["functions_rejected"], "skipped": s["skipped_by_reason"], "vulnerable": s["vulnerable"],
               "cache": s.get("cache")}
    out["seconds"] = round(time.perf_counter() - t0, 2)
    t = os.times()  # CPU time of this process and its reaped workers: less sensitive to other jobs than wall time
    out["cpu_seconds"] = round(t.user + t.system - cpu0.user - cpu0.system + t.children_user + t.children_system, 2)
    print(json.dumps(out))


def _peer(name: str, args: argparse.Namespace) -> dict:
    """Child: a peer tool on the same folders, as a user runs it; its wall and CPU time, its output lines."""
    import shutil
    exe = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if exe is None:
        raise SystemExit(f"{name} not found beside {sys.executable} or on PATH")
    dirs = [str(Path(args.src) / d) for d in args.dirs]
    cmd = {"flawfinder": [exe, "--csv", "--minlevel=1", "--quiet", *dirs],
           "cppcheck": [exe, "--quiet", "--language=c", "--std=c11", "--max-configs=1", f"-j{args.workers}",
                        "--enable=warning,style,performance,portability", "--template={file}\t{severity}\t{id}",
                        *dirs]}[name]
    cpu0, t0 = os.times(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    t = os.times()
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return {"files": None, "functions": None, "findings_lines": len(lines) - (name == "flawfinder"),
            "exit": proc.returncode, "tool_command": " ".join(Path(c).name if c == exe else c for c in cmd),
            "seconds": round(time.perf_counter() - t0, 2),
            "cpu_seconds": round(t.children_user + t.children_system - cpu0.children_user - cpu0.children_system, 2)}


def _run_sampled(cmd: list[str], env: dict) -> tuple[str, float]:
    """The child's stdout and its process tree's peak RSS in MB (sampled)."""
    import psutil
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"measurement {cmd} failed with exit {proc.returncode}")
    return out, peak / 2**20


def _measure(name: str, target: str, args: argparse.Namespace, floor: dict | None) -> dict:
    workers = 1 if name.endswith("@jobs1") else args.workers
    cmd = [sys.executable, __file__, "--one", target, "--src", args.src, "--dirs", *args.dirs,
           "--workers", str(workers), "--threads", str(args.threads)]
    cmd += ["--sklearn-counting"] if name.endswith("@sklearn") else []
    suffix = name.rpartition("@")[2] if "@" in name else ""
    cmd += ["--precision", suffix] if suffix in PRECISION_SUFFIXES else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if name.endswith("@before"):
        env["PYTHONPATH"] = str(Path(args.before_src) / "src")
    if name.endswith("@cache"):
        import tempfile
        cache = tempfile.mkdtemp(prefix="scan-speed-cache-")
        cmd += ["--cache", cache]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=env)  # fills it, untimed
    load_before = os.getloadavg()
    out, peak = _run_sampled(cmd, env)
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb_tree"] = round(peak, 1)
    if res["functions"] is None and floor is not None:  # a peer: the same files, so the floor's functions
        res["functions"], res["files"] = floor["functions"], floor["files"]
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
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--peers", default="", help="comma-separated: cppcheck, flawfinder (run on the same folders)")
    ap.add_argument("--before-src", default=None, help="checkout whose src/ the NAME@before rows run")
    ap.add_argument("--repeats", type=int, default=1, help="measure each row this many times; the median is shown")
    args = ap.parse_args()
    if args.one and args.one.startswith("peer:"):
        print(json.dumps(_peer(args.one[5:], args)))
        return
    if args.one:
        _one(args)
        return
    peers = [(f"{p}", f"peer:{p}") for p in args.peers.split(",") if p]
    targets = [("floor", "floor"), *(b.split("=", 1) for b in args.bundle), *peers]
    # the code measured: taken before the runs (editing files while it runs must not make it look dirty or new)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    clean = not subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout
    runs: dict[str, list[dict]] = {name: [] for name, _ in targets}
    for _ in range(args.repeats):  # round robin: a drift in the machine's load touches every row alike
        for name, target in targets:
            runs[name].append(_measure(name, target, args, runs["floor"][-1] if runs["floor"] else None))
            print(json.dumps(runs[name][-1]), file=sys.stderr)
    rows = [_median(runs[name]) for name, _ in targets]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit,
              "machine": {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows,
              "clean": clean}
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
             f"{r['machine']['cores']} cores; working tree {'clean' if r.get('clean') else 'NOT clean'}. "
             "**The machine was shared with other jobs: see the load averages; "
             "timings are under contention and are upper bounds.**", "",
             "Peak memory: the child's whole process tree (scan + workers, or the peer tool), sampled every 20 ms.",
             "",
             "CPU seconds (user + system, the process and its featurizing workers) depend less on the other jobs; "
             "on an idle machine with 2 cores, wall time would be about CPU seconds / 2 at best.", "",
             f"Each row is the median of {r['rows'][0]['runs']} runs by wall time (every run's times are in the "
             "JSON).", "",
             "| what | files | functions | wall s | functions/s (wall) | x floor (wall) | CPU s | functions per CPU s "
             "| x floor (CPU) | peak RSS MB (tree) | load avg before -> after (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['name']} | {row['files']} | {row['functions']} | {row['seconds']} | "
                     f"{row['functions_per_s']} | {row['seconds'] / floor['seconds']:.1f} | {row['cpu_seconds']} | "
                     f"{row['functions_per_cpu_s']} | {row['cpu_seconds'] / floor['cpu_seconds']:.1f} | "
                     f"{row['peak_rss_mb_tree']} | "
                     f"{row['load_avg_before'][0]} -> {row['load_avg_after'][0]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
