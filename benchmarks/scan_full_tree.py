"""Whole linux-source-6.1 tree (unpacked in /tmp/kernel/full), lexical bundle, --jobs 2: functions, wall, CPU,
peak RSS (sampled every 50 ms) of the process tree and of the main process alone, and a timeline of both every
30 s (where the memory went). Paths are this session's; see benchmarks/results/scan_speed_v2.md and
scan_full_tree_v2.md. ``python benchmarks/scan_full_tree.py [OUT_DIR]`` (default /tmp/speed)."""
import json
import os
import subprocess
import sys
import time

import psutil

K = "/tmp/kernel/full/linux-source-6.1"
OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/speed"
cmd = [sys.executable, "-m", "streamguard.cli", "scan", K, "--root", K, "--model", "/tmp/speed/b_lexical",
       "--format", "json", "--out", f"{OUT}/full.json", "--jobs", "2", "--fail-on", "none", "--evidence", "0"]
load0 = os.getloadavg()
t0 = time.perf_counter()
proc = subprocess.Popen(cmd)
root, peak, peak_main, timeline, last = psutil.Process(proc.pid), 0, 0, [], -30.0
while proc.poll() is None:
    try:
        main = root.memory_info().rss
        kids = sum(p.memory_info().rss for p in root.children(recursive=True))
    except psutil.Error:
        continue
    peak, peak_main = max(peak, main + kids), max(peak_main, main)
    if time.perf_counter() - last >= 30:
        last = time.perf_counter()
        timeline.append([round(last - t0), round(main / 2**20), round(kids / 2**20)])
    time.sleep(0.05)
wall = time.perf_counter() - t0
t = os.times()
s = json.load(open(f"{OUT}/full.json"))["summary"]
print(json.dumps({"command": " ".join(cmd[1:]), "exit": proc.returncode, "wall_s": round(wall, 1),
                  "cpu_s": round(t.children_user + t.children_system, 1), "peak_rss_mb_tree": round(peak / 2**20, 1),
                  "peak_rss_mb_main": round(peak_main / 2**20, 1), "load_avg_before": load0,
                  "load_avg_after": os.getloadavg(), "report_bytes": os.path.getsize(f"{OUT}/full.json"),
                  "summary": s, "timeline_s_main_mb_workers_mb": timeline}))
