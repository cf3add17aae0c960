"""examples/scan_quickstart.py runs end to end (its --quick settings) and uses the public API alone."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "scan_quickstart.py"


def test_the_example_imports_nothing_but_the_package_top_level() -> None:
    imported = set()
    for node in ast.walk(ast.parse(EXAMPLE.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert {m for m in imported if m.startswith("streamguard")} == {"streamguard"}


def test_scan_quickstart_trains_exports_and_scans_real_c(tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--quick", "--work", str(tmp_path / "work"), "--top", "3"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scanned = re.search(r"scanned (\d+) functions in (\d+) files", proc.stdout)
    assert scanned and int(scanned.group(1)) > 100 and int(scanned.group(2)) > 10  # tests/fixtures/kernel_c
    findings = re.findall(r"^(\d\.\d{3}) (vulnerable|clean) +lib/\S+\.c:\d+ \w+\(\)$", proc.stdout, re.M)
    assert len(findings) == 3 and [float(f[0]) for f in findings] == sorted((float(f[0]) for f in findings),
                                                                         reverse=True)
    assert (tmp_path / "work" / "bundle" / "bundle.json").is_file()


def test_a_missing_dataset_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--data", str(tmp_path / "none"), "--work",
                           str(tmp_path / "w")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("scan_quickstart: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
