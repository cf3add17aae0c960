"""One line and a clear exit status where tracebacks were: Ctrl-C in training, bad --out, unsafe YAML;
outputs written atomically, and a pipeline step counted done only when its rerun finished."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.data.records import write_jsonl

DATA = Path(__file__).parent / "fixtures" / "gnn_processed"
RAW = Path(__file__).parent / "fixtures" / "raw_small"
KILLER = Path(__file__).parent / "kill_at.py"


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("streamguard: error:"), err
    return err


def test_ctrl_c_during_neural_training_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-m", "streamguard.cli", "train", "gnn", "--data", str(DATA), "--out", str(out),
            "--epochs", "500", "--tracking-uri", "off", "--set", "hidden=16", "embed_dim=8", "head_hidden=16",
            "layers=1", "batch_size=4", "patience=1000", f"cache_dir={tmp_path / 'cache'}"]
    # A suite started in the background of a shell without job control inherits SIGINT ignored, and so would the
    # child (Python keeps an ignored SIGINT ignored): give it the default disposition a terminal's Ctrl-C meets.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not (out / "checkpoints" / "epoch-000.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "streamguard: interrupted" in err and "Traceback" not in err


def test_predict_out_a_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "dir").mkdir()
    assert main(["predict", "--run", str(tmp_path / "norun"), "--data", str(DATA), "--out",
                 str(tmp_path / "dir")]) == 2
    assert "is a directory" in _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]  # no DIR.tmp left behind


def test_unsafe_yaml_tag_in_a_pipeline_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text("params: !!python/object/apply:os.system ['echo pwned']\nsteps: []\n")
    assert main(["pipeline", "--config", str(cfg)]) == 2
    assert "safe YAML" in _one_line(capsys)


def test_out_in_a_read_only_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert main(["data", "import", "codexglue", "--source", str(RAW), "--out", str(ro / "x")]) == 2
    assert "cannot create" in _one_line(capsys)


def test_an_output_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    write_jsonl(path, [{"id": "a"}])

    def rows():
        yield {"id": "b"}
        raise RuntimeError("killed half-way")
    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == '{"id": "a"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["preds.jsonl"]


def test_a_pipeline_step_killed_during_its_rerun_is_not_done(tmp_path: Path) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text("params: {source: x, raw: '" + str(tmp_path / "raw") + "', logs: '" + str(tmp_path / "logs")
                   + "'}\nsteps:\n"
                   "  - name: import\n    run: data import codexglue --source {source} --out {raw}\n"
                   "    done: '{raw}/manifest.json'\n")
    half = tmp_path / "half"
    half.mkdir()
    for split in ("train", "valid", "test"):  # a smaller source: the rerun changes every split
        lines = (RAW / f"{split}.jsonl").read_text().splitlines()[:5]
        (half / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "streamguard.cli", "pipeline", "--config", str(cfg), "--set"]
    assert subprocess.run([*base, f"source={RAW}"], env=env, capture_output=True).returncode == 0
    again = subprocess.run([*base, f"source={RAW}"], env=env, capture_output=True, text=True)
    assert "- import" in again.stderr and "already" in again.stderr
    killed = subprocess.run([sys.executable, str(KILLER), "pipeline", "--config", str(cfg), "--set",
                             f"source={half}"], env={**env, "SG_KILL_AT": "valid.jsonl:1"}, capture_output=True)
    assert killed.returncode == -9
    rerun = subprocess.run([*base, f"source={half}"], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0 and "done already" not in rerun.stdout
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["counts"]["valid"]["read"] == 5


def test_credentials_in_uris_reach_neither_exp_config_nor_logs(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from streamguard.rundir import write_exp_config
    from streamguard.train import checkpoint as ck

    uri = "s3://AKIAEXAMPLE:wJalr/XUtnFEMI+K7MDENG@bucket/run"
    cfg = write_exp_config(tmp_path, "gnn", DATA, {"checkpoint_uri": uri, "tracking_uri": "ftp://u:p4ss@h/x"})
    text = (tmp_path / "exp_config.json").read_text()
    assert "wJalr" not in text and "p4ss" not in text and "AKIAEXAMPLE" not in text
    assert cfg["hyperparameters"]["checkpoint_uri"] == "s3://***@bucket/run"
    with caplog.at_level(logging.WARNING):  # any logger, e.g. the mirror's warnings or fsspec's errors
        logging.getLogger("streamguard.train.checkpoint").warning("checkpoint mirror %s unreachable", uri)
        logging.getLogger("fsspec").warning(f"cannot reach ftp://u:p4ss@h/x ({ck.__name__})")
    assert "unreachable" in caplog.text and "wJalr" not in caplog.text and "p4ss" not in caplog.text
    assert "s3://***@bucket/run" in caplog.text


def test_nan_logits_are_refused_by_fuse() -> None:
    from streamguard.errors import UserError
    from streamguard.train.fuse import _matrix

    rows = [{"id": "a", "logits": [0.0, 1.0]}, {"id": "b", "logits": [0.0, float("nan")]}]
    with pytest.raises(UserError, match="non-finite logit for b"):
        _matrix({"gnn": rows}, ["a", "b"])
