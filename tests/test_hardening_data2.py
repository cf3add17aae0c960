"""Round two of the data-side hardening (issue 27): merge in place, kill -9 and a second writer; CSV rows that
swallow the next one; renamed near-duplicates; non-UTF-8 CSV rows, JSON booleans and empty imports; NaN in
out-of-fold predictions; names escaped in the compare report; preprocess refusing an unverified raw folder."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.data.neardup import jaccard, shingle_hashes

FIX = Path(__file__).parent / "fixtures" / "collected"
BASE = FIX / "devign_base"
KILLER = Path(__file__).parent / "kill_at.py"


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _funcs(split: str = "train") -> list[dict]:
    return _rows(BASE / f"{split}.jsonl")


def _import_jsonl(tmp: Path, name: str, rows: list[dict]) -> Path:
    src = tmp / f"{name}.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "import", "jsonl", "--source", str(src), "--name", name, "--out", str(tmp / name)]) == 0
    return tmp / name


def _csv_text(rows: list[tuple[str, object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["func", "target"])
    w.writerows(rows)
    return buf.getvalue()


def _import_csv(tmp: Path, data: bytes, capsys: pytest.CaptureFixture | None = None) -> tuple[int, Path]:
    (tmp / "in.csv").write_bytes(data)
    out = tmp / "out"
    return main(["data", "import", "csv", "--source", str(tmp / "in.csv"), "--name", "c", "--out", str(out)]), out


# --- 7 and 19: merge in place, manifest first, one writer ---------------------------------------------------

@pytest.mark.parametrize("where", ["base", "add", "inside_base", "containing_add"])
def test_merge_refuses_an_output_that_is_or_holds_an_input(tmp_path: Path, capsys, where: str) -> None:
    base = tmp_path / "base"
    shutil.copytree(BASE, base)
    add = _import_jsonl(tmp_path, "extra", _funcs("train")[:2])
    out = {"base": base, "add": add, "inside_base": base / "m", "containing_add": tmp_path}[where]
    before = {p: p.read_bytes() for p in (base / "train.jsonl", add / "pool.jsonl")}
    capsys.readouterr()
    assert main(["data", "merge", "--base", str(base), "--add", str(add), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--out" in err and "input" in err
    assert all(p.read_bytes() == b for p, b in before.items())
    assert not (base / "m").exists()


def test_a_merge_killed_while_rewriting_its_output_leaves_no_manifest(tmp_path: Path) -> None:
    other = _rows(Path(__file__).parent / "fixtures" / "raw_small" / "train.jsonl")  # not in the base
    add_a = _import_jsonl(tmp_path, "a", other[:3])
    add_b = _import_jsonl(tmp_path, "b", other[3:9])
    out = tmp_path / "m"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["data", "merge", "--base", str(BASE), "--out", str(out), "--add"]
    assert subprocess.run([sys.executable, "-m", "streamguard.cli", *args, str(add_a)], env=env).returncode == 0
    assert (out / "manifest.json").is_file()
    # B's train.jsonl lands (the second file of that name: heldout/train.jsonl comes first), then kill -9
    killed = subprocess.run([sys.executable, str(KILLER), *args, str(add_b)],
                            env={**env, "SG_KILL_AT": "train.jsonl:2"}, capture_output=True)
    assert killed.returncode == -9
    assert not (out / "manifest.json").exists()  # never A's manifest beside B's train.jsonl
    assert main(["preprocess", "--raw", str(out), "--out", str(tmp_path / "p"), "--tokenizer", "bpe"]) == 2


def test_a_second_merge_into_one_folder_is_refused(tmp_path: Path, capsys) -> None:
    add = _import_jsonl(tmp_path, "extra", _funcs("train")[:2])
    out = tmp_path / "m"
    code = ("import sys, time; from streamguard.runlock import locked\n"
            "with locked(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["data", "merge", "--base", str(BASE), "--add", str(add), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "in use by another streamguard process" in err
        assert not (out / "train.jsonl").exists()
    finally:
        proc.kill()
        proc.wait()


def test_preprocess_refuses_a_raw_folder_without_or_against_its_manifest(tmp_path: Path, capsys) -> None:
    raw = tmp_path / "raw"
    assert main(["data", "import", "codexglue", "--source", str(BASE), "--out", str(raw)]) == 0
    with open(raw / "valid.jsonl", "a") as fh:  # changed after the import
        fh.write(json.dumps(_funcs("train")[0]) + "\n")
    capsys.readouterr()
    assert main(["preprocess", "--raw", str(raw), "--out", str(tmp_path / "p"), "--tokenizer", "bpe"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "valid.jsonl" in err and "manifest" in err
    (raw / "manifest.json").unlink()
    assert main(["preprocess", "--raw", str(raw), "--out", str(tmp_path / "p"), "--tokenizer", "bpe"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no manifest.json" in err


# --- 8 and 16: CSV physical records, non-UTF-8 rows, JSON booleans, empty imports -----------------------------

def test_an_unbalanced_quote_rejects_its_row_and_keeps_the_next(tmp_path: Path) -> None:
    funcs = [r["func"] for r in _funcs("train")[:4]]
    text = _csv_text([(f, i % 2) for i, f in enumerate(funcs)])
    # the second row's closing quote is lost: its text runs into the third row
    end = f'{funcs[1][-20:]}",1\n'
    assert text.count(end) == 1
    broken = text.replace(end, end.replace('",1', ",1"))
    start_line = text[: text.index(funcs[1][:30])].count("\n") + 1
    code, out = _import_csv(tmp_path, broken.encode())
    assert code == 0
    c = json.loads((out / "manifest.json").read_text())["counts"]["pool"]
    assert (c["read"], c["written"], c["rejected"]) == (4, 3, 1)
    (rej,) = _rows(out / "rejects.jsonl")
    assert rej["line"] == start_line and "quote" in rej["reason"]
    assert [r["func"] for r in _rows(out / "pool.jsonl")] == [funcs[0], funcs[2], funcs[3]]


def test_a_row_that_swallows_single_line_rows_is_rejected_alone(tmp_path: Path) -> None:
    text = 'func,target\nint a(void) { return 0; },0\n"int b(void) { return 1; },1\n' \
           'int c(void) { return 2; },0\nint d(void) { return 3; },1\n'
    code, out = _import_csv(tmp_path, text.encode())
    assert code == 0
    c = json.loads((out / "manifest.json").read_text())["counts"]["pool"]
    assert (c["read"], c["written"], c["rejected"]) == (4, 3, 1)
    assert _rows(out / "rejects.jsonl")[0]["line"] == 3
    assert [r["target"] for r in _rows(out / "pool.jsonl")] == [0, 0, 1]


def test_a_non_utf8_csv_row_is_rejected_and_the_others_kept(tmp_path: Path) -> None:
    funcs = [r["func"] for r in _funcs("train")[:3]]
    data = _csv_text([(f, 1) for f in funcs]).encode()
    data = data.replace(funcs[1][:20].encode(), funcs[1][:20].encode() + b"\xe9\xff", 1)
    code, out = _import_csv(tmp_path, data)
    assert code == 0
    (rej,) = _rows(out / "rejects.jsonl")
    assert "UTF-8" in rej["reason"]
    assert [r["func"] for r in _rows(out / "pool.jsonl")] == [funcs[0], funcs[2]]


def test_json_boolean_labels_are_read_as_the_docs_say(tmp_path: Path) -> None:
    rows = [{**r, "target": bool(r["target"])} for r in _funcs("train")[:4]]
    out = _import_jsonl(tmp_path, "b", rows)
    assert [r["target"] for r in _rows(out / "pool.jsonl")] == [int(r["target"]) for r in rows]
    doc = (Path(__file__).parents[1] / "docs" / "data-collection.md").read_text()
    assert "JSON `true` / `false`" in doc


@pytest.mark.parametrize("data", [b"func,target\n", b"func,target\n,1\nint f(void) { return 0; },7\n"])
def test_an_import_with_nothing_usable_exits_2(tmp_path: Path, capsys, data: bytes) -> None:
    code, out = _import_csv(tmp_path, data)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nothing to import" in err
    assert not (out / "manifest.json").exists()


# --- 9: renamed copies --------------------------------------------------------------------------------------

_KEEP = set("""auto break case char const continue default do double else enum extern float for goto if int long
register return short signed sizeof static struct switch typedef union unsigned void volatile while uint8_t
uint16_t uint32_t uint64_t int8_t int16_t int32_t int64_t size_t NULL""".split())


def _renamed(code: str) -> str:
    """Every identifier that is not a keyword, a standard type or a called function, consistently renamed."""
    names: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        name = m.group(0)
        if name in _KEEP or re.match(r"\s*\(", code[m.end():]) and name not in names:
            return name
        return names.setdefault(name, f"q{len(names)}x")
    return re.sub(r"\b[A-Za-z_]\w*\b", sub, code)


def test_a_renamed_test_function_never_reaches_train(tmp_path: Path) -> None:
    test_row = _funcs("test")[0]
    copy = _renamed(test_row["func"])
    assert copy != test_row["func"]
    assert jaccard(shingle_hashes(copy), shingle_hashes(test_row["func"])) < 0.3  # raw text alone misses it
    add = _import_jsonl(tmp_path, "renamed", [{**test_row, "func": copy, "idx": 1}])
    assert main(["data", "merge", "--base", str(BASE), "--add", str(add), "--out", str(tmp_path / "m")]) == 0
    assert copy not in {r["func"] for r in _rows(tmp_path / "m" / "train.jsonl")}
    (drop,) = [d for d in _rows(tmp_path / "m" / "dropped.jsonl") if d["source"] == "renamed"]
    assert drop["reason"] == "near-equal to an evaluation function" and drop["match"] == "base:test:0"


# --- 10: NaN out-of-fold predictions ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fusion_run(tmp_path_factory) -> Path:
    from processed_fixture import make_processed

    from streamguard.config import FuseConfig
    from streamguard.train import fuse
    tmp = tmp_path_factory.mktemp("denoise_nan")
    data = make_processed(tmp)
    cfg_path = tmp / "lexical.yaml"
    cfg_path.write_text("analyzer: code\nngram_min: 1\nngram_max: 1\nmax_features: 3000\nc_grid: [1.0]\n")
    return fuse.train(data, tmp / "fusion", FuseConfig(models=["lexical"], folds=3,
                                                       base_configs=[f"lexical={cfg_path}"]))


@pytest.mark.parametrize("field, value", [("prob_vulnerable", float("nan")), ("logits", [0.0, float("nan")]),
                                          ("logits", [float("inf"), 0.0])])
def test_denoise_refuses_non_finite_oof_naming_the_row(fusion_run: Path, tmp_path: Path, capsys, field, value):
    run = tmp_path / "run"
    shutil.copytree(fusion_run, run)
    oof = run / "oof" / "lexical.jsonl"
    lines = oof.read_text().splitlines()
    row = json.loads(lines[4])
    row[field] = value
    lines[4] = json.dumps(row)  # Python writes NaN / Infinity, which json.loads reads back
    oof.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["denoise", "--run", str(run), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "lexical.jsonl" in err and "5" in err
    assert not (tmp_path / "d" / "sample_weights.jsonl").exists()


# --- 17: names in the compare report ------------------------------------------------------------------------

def test_compare_report_escapes_names(tmp_path: Path) -> None:
    from streamguard.evaluate.compare_report import write_markdown
    evil = "<img src=x onerror=alert(1)>|x\nnew"
    stat = {"a_mean": 0.5, "b_mean": 0.6, "bootstrap": {"ci": [0.0, 0.2], "difference": 0.1, "p_value": 0.1},
            "seeds": {"t_test": {"p_value": 0.2}, "wilcoxon": {"p_value": 0.3}}, "effect_size_dz": 1.0}
    group = {"n": 3, "vulnerable_share": 0.5, "accuracy": {"a_mean": 0.5, "b_mean": 0.6, "ci": [0.0, 0.1]},
             "roc_auc": {"a_mean": 0.5, "b_mean": 0.6, "ci": [0.0, 0.1]}}
    res = {"a": {"name": evil, "runs": {"1": "x"}}, "b": {"name": "b", "runs": {"1": "y"}}, "bootstrap": 10,
           "verdict": {"summary": "ok"},
           "sets": {evil: {"n_items": 3, "metrics": {"accuracy": stat}, "by_project": {evil: group}}},
           "labels": {"rule": "r", "balance": {f"{evil} train": {"all": {"count": 3, "vulnerable_share": 0.5}}},
                      "flagged": [f"{evil} train"]}}
    write_markdown(tmp_path / "report.md", res)
    text = (tmp_path / "report.md").read_text()
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;\\|x new" in text
