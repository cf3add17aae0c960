"""Hostile and odd input to `data import` and `preprocess`: one bad line rejects only itself, with a reason."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.config import PreprocessConfig
from streamguard.data.ingest import import_codexglue
from streamguard.features.preprocess import MAX_FUNCTION_BYTES, preprocess
from streamguard.provenance import sha256_file

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
DEEP = b"[" * 200_000 + b"]" * 200_000  # RecursionError in json.loads


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _source(root: Path, raw_small: Path, extra: dict[str, list[bytes]]) -> Path:
    """raw_small plus hostile lines, with the manifest that preprocess checks the files against (lines an
    import would reject still reach preprocess this way, as from a writer other than ours)."""
    root.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        lines = (raw_small / f"{split}.jsonl").read_bytes().splitlines()
        (root / f"{split}.jsonl").write_bytes(b"\n".join(lines + extra.get(split, [])) + b"\n")
    sha = {f"{s}.jsonl": sha256_file(root / f"{s}.jsonl") for s in ("train", "valid", "test")}
    (root / "manifest.json").write_text(json.dumps({"sha256": sha}))
    return root


def _row(**kw: object) -> bytes:
    return json.dumps({"project": "p", "commit_id": "c", "target": 0, "func": "int f(void) { return 0; }",
                       **kw}).encode()


def test_import_rejects_only_the_hostile_and_odd_lines(tmp_path: Path, raw_small: Path) -> None:
    extra = {"train": [DEEP, _row(target=1.0, idx=900001), _row(target=-0.0, idx=900002), _row(idx=900003),
                       _row(idx=900003, func="int g(void) { return 1; }")],
             "test": [_row(idx=900003, func="int h(void) { return 2; }")]}
    src = _source(tmp_path / "src", raw_small, extra)
    manifest = import_codexglue(src, tmp_path / "out")
    rejects = _rows(tmp_path / "out" / "rejects.jsonl")
    reasons = [r["reason"] for r in rejects]
    assert len(rejects) == 4 and manifest["counts"]["train"]["rejected"] == 4
    assert "nested too deeply" in reasons[0]
    assert "must be 0 or 1, got 1.0" in reasons[1] and "must be 0 or 1, got -0.0" in reasons[2]
    assert "duplicate idx 900003" in reasons[3]
    assert manifest["audit"]["duplicate_idx_across_splits"] == {"count": 1, "examples": ["900003"]}
    assert all(0 < len(r["raw"]) <= 200 for r in rejects) and rejects[0]["raw"].startswith("[[[")
    c = manifest["counts"]["train"]
    assert c["read"] == c["written"] + c["rejected"]


def test_a_utf8_bom_does_not_cost_the_first_row(tmp_path: Path, raw_small: Path) -> None:
    src = _source(tmp_path / "src", raw_small, {})
    (src / "train.jsonl").write_bytes(b"\xef\xbb\xbf" + (src / "train.jsonl").read_bytes())
    manifest = import_codexglue(src, tmp_path / "out")
    assert manifest["counts"]["train"]["rejected"] == 0


def test_empty_import_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for split in ("train", "valid", "test"):
        (src / f"{split}.jsonl").write_text("")
    assert main(["data", "import", "codexglue", "--source", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "splits are empty" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unreadable_input_and_bad_out_exit_2(tmp_path: Path, raw_small: Path, capsys: pytest.CaptureFixture) -> None:
    src = _source(tmp_path / "src", raw_small, {})
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["data", "import", "codexglue", "--source", str(src), "--out", str(afile)]) == 2
    assert "not a directory" in capsys.readouterr().err
    if os.geteuid() != 0:  # root reads anything: the permission case only means something for a user
        (src / "valid.jsonl").chmod(0)
        assert main(["data", "import", "codexglue", "--source", str(src), "--out", str(tmp_path / "o")]) == 2
        assert "cannot read" in capsys.readouterr().err
    assert main(["preprocess", "--raw", str(src), "--out", str(tmp_path / "p"), "--reuse-from",
                 str(tmp_path / "missing")]) == 2
    assert "--reuse-from" in capsys.readouterr().err


def test_preprocess_rejects_hostile_huge_and_keeps_the_rest(tmp_path: Path, raw_small: Path) -> None:
    big = json.dumps({"project": "p", "commit_id": "", "target": 1, "idx": 7,
                      "func": "int f(void) {\n" + "  x++;\n" * (MAX_FUNCTION_BYTES // 6) + "}\n"}).encode()
    src = _source(tmp_path / "src", raw_small, {"valid": [DEEP, big]})
    meta = preprocess(src, tmp_path / "p", PreprocessConfig(tokenizer="bpe", bpe_vocab_size=500, workers=1))
    rejects = _rows(tmp_path / "p" / "rejects.jsonl")
    assert [r["row"] for r in rejects] == [12, 13]
    assert "nested too deeply" in rejects[0]["reason"] and rejects[0]["raw"].startswith("[[[")
    assert "function too large" in rejects[1]["reason"]
    assert meta["counts"]["valid"]["written"] == 12
    rec = _rows(tmp_path / "p" / "test.jsonl")[0]
    raw = json.loads((src / "test.jsonl").read_text().splitlines()[0])
    import hashlib
    assert rec["metadata"]["content_sha256"] == hashlib.sha256(raw["func"].encode()).hexdigest()


def test_max_tokens_below_three_is_refused(tmp_path: Path, raw_small: Path) -> None:
    from streamguard.errors import UserError
    with pytest.raises(UserError, match="'max_tokens': must be >= 3"):
        preprocess(raw_small, tmp_path / "p", PreprocessConfig(tokenizer="bpe", max_tokens=1, workers=1))


def test_featurizer_with_a_tiny_budget_keeps_one_token(processed_small: Path) -> None:
    from streamguard.features.featurize import Featurizer
    from streamguard.features.tokenize import SafeTokenizer
    tok = SafeTokenizer.load(processed_small / "tokenizer")
    identity = tok.identity(processed_small / "tokenizer")
    f = Featurizer.from_dir(processed_small / "tokenizer", identity, 1, {}, None)
    code = (SAMPLE / "test.jsonl").read_text().splitlines()[0]
    kept, info, ids, _ = f.kept_code(json.loads(code)["func"])
    assert len(ids) == 1 and info["trimmed"]


def test_sigterm_during_preprocess_exits_143_without_tracebacks(tmp_path: Path) -> None:
    out, raw = tmp_path / "p", tmp_path / "raw"
    import_codexglue(SAMPLE, raw)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamguard.cli", "preprocess", "--raw", str(raw),
                             "--out", str(out), "--tokenizer", "bpe", "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / "node_vocab.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the record workers are running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "BrokenPipe" not in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("streamguard: preprocess stopped by SIGTERM")
    assert not (out / "preprocessing_metadata.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    shutil.rmtree(out)


def test_preprocess_rerun_killed_after_its_splits_is_redone(tmp_path: Path, raw_small: Path) -> None:
    out, env = tmp_path / "p", {**os.environ, "PYTHONUNBUFFERED": "1"}
    killer = Path(__file__).parent / "kill_at.py"
    raw = tmp_path / "raw"
    import_codexglue(raw_small, raw)

    def args(vocab: int) -> list[str]:
        return ["preprocess", "--raw", str(raw), "--out", str(out), "--tokenizer", "bpe", "--workers", "1",
                "--set", f"bpe_vocab_size={vocab}"]
    first = subprocess.run([sys.executable, "-m", "streamguard.cli", *args(400)], env=env, capture_output=True)
    assert first.returncode == 0
    before = (out / "train.jsonl").read_bytes()
    # another config, killed once its new splits are in place but before its metadata
    killed = subprocess.run([sys.executable, str(killer), *args(600)], env={**env, "SG_KILL_AT": "train.jsonl:1"},
                            capture_output=True)
    assert killed.returncode == -9 and (out / "train.jsonl").read_bytes() != before
    again = subprocess.run([sys.executable, "-m", "streamguard.cli", *args(400)], env=env, capture_output=True,
                           text=True)
    assert again.returncode == 0 and "up to date" not in again.stdout
    assert (out / "train.jsonl").read_bytes() == before
