"""Whole linux-source-6.1 tree (unpacked in /tmp/kernel/full), lexical bundle, --jobs 2: functions, wall, CPU,
process-tree peak RSS (sampled). Paths are this session's; see benchmarks/results/scan_speed_v2.md."""
import json
import os
import subprocess
import sys
import time

import psutil

K = "/tmp/kernel/full/linux-source-6.1"
cmd = [sys.executable, "-m", "streamguard.cli", "scan", K, "--root", K, "--model", "/tmp/speed/b_lexical",
       "--format", "json", "--out", "/tmp/speed/full.json", "--jobs", "2", "--fail-on", "none", "--evidence", "0"]
load0 = os.getloadavg()
t0 = time.perf_counter()
proc = subprocess.Popen(cmd)
root, peak = psutil.Process(proc.pid), 0
while proc.poll() is None:
    try:
        peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
    except psutil.Error:
        pass
    time.sleep(0.05)
wall = time.perf_counter() - t0
t = os.times()
s = json.load(open("/tmp/speed/full.json"))["summary"]
print(json.dumps({"command": " ".join(cmd[1:]), "exit": proc.returncode, "wall_s": round(wall, 1),
                  "cpu_s": round(t.children_user + t.children_system, 1), "peak_rss_mb_tree": round(peak / 2**20, 1),
                  "load_avg_before": load0, "load_avg_after": os.getloadavg(), "summary": s}))
