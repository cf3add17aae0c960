import os
import subprocess
import sys

import pytest

from streamguard.cli import main


def test_help_lists_the_stages():
    out = subprocess.run([sys.executable, "-m", "streamguard.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for stage in ("data", "preprocess"):
        assert stage in out.stdout


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["preprocess", "--raw", str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
                 "--tokenizer", "bpe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamguard: error:") and err.count("\n") == 1 and "not found" in err


def test_bad_config_override_is_a_user_error(tmp_path, capsys):
    assert main(["preprocess", "--raw", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "max_tokens=lots"]) == 2
    assert "expected int" in capsys.readouterr().err


_DENORMAL_PROBE = """
import sys

import pytest
import torch
from streamguard.runtime import prepare_torch_cpu
if sys.argv[1] == "prepared":
    prepare_torch_cpu()
torch.set_num_threads(2)
x = torch.full((1 << 22,), 1e-39)  # a denormal float32, spread over both threads' chunks
print(int((x * 1.0 == 0).sum()), x.numel())
"""


@pytest.mark.parametrize("mode", ["prepared", "plain"])
def test_training_processes_flush_denormals_in_every_thread(mode):
    """Denormal weights made GNN epochs 4x slower; the flush must reach the worker threads too."""
    out = subprocess.run([sys.executable, "-c", _DENORMAL_PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    flushed, total = map(int, out.stdout.split())
    assert flushed == (total if mode == "prepared" else 0)
