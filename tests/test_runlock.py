"""A second writer into a folder that another process is writing is refused in one line (exit 2)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.runlock import locked

DATA = Path(__file__).parent / "fixtures" / "gnn_processed"


@pytest.fixture
def held(tmp_path: Path):
    """Another process holding the lock on tmp_path/out, as a running stage would."""
    out = tmp_path / "out"
    code = ("import sys, time; from streamguard.runlock import locked\n"
            "with locked(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield out
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("argv", [
    ["train", "gnn", "--data", str(DATA), "--epochs", "1", "--tracking-uri", "off", "--set", "cache_dir=CACHE"],
    ["preprocess", "--raw", str(Path(__file__).parent / "fixtures" / "raw_small")],
    ["data", "import", "codexglue", "--source", str(Path(__file__).parent / "fixtures" / "raw_small")],
    # every other stage that writes a folder takes the same lock (issue 23)
    ["data", "import", "bigvul", "--source", str(Path(__file__).parent / "fixtures" / "collected" / "bigvul.csv")],
    ["data", "merge", "--base", str(Path(__file__).parent / "fixtures" / "raw_small"), "--add", "CACHE"],
    ["corpus", "--source", str(Path(__file__).parent / "fixtures" / "kernel_c"), "--no-devign"],
    ["denoise", "--run", "CACHE"],
    ["pretrain", "--corpus", "CACHE"],
])
def test_second_writer_is_refused(held: Path, argv: list[str], capsys: pytest.CaptureFixture) -> None:
    argv = [a.replace("CACHE", str(held.parent / "cache")) for a in argv]
    assert main([*argv, "--out", str(held)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "in use by another streamguard process" in err
    assert not (held / "exp_config.json").exists() and not (held / "manifest.json").exists()


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = ("import sys, time; from streamguard.runlock import locked\n"
            "with locked(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()  # SIGKILL: no clean-up code runs
    proc.wait()
    with locked(out):
        with locked(out):  # the same process re-enters (a fusion trains its folds inside its own run)
            time.sleep(0)
