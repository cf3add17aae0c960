import json

import pytest

from streamguard.data.ingest import import_codexglue
from streamguard.errors import UserError


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_both_source_forms_give_the_same_functions(tmp_path, raw_small):
    a = import_codexglue(raw_small, tmp_path / "a")
    b = import_codexglue(raw_small.parent / "devign_form", tmp_path / "b")
    assert a["extra"]["source_form"] == "codexglue-jsonl" and b["extra"]["source_form"] == "devign-function-json"
    for split in ("train", "valid", "test"):
        ra, rb = _rows(tmp_path / "a" / f"{split}.jsonl"), _rows(tmp_path / "b" / f"{split}.jsonl")
        assert [(r["func"], r["target"]) for r in ra] == [(r["func"], r["target"]) for r in rb]
        assert a["counts"][split]["written"] == len(ra)
    assert a["sha256"]["train.jsonl"] and (tmp_path / "a" / "manifest.json").is_file()


def _write_bad_source(root, raw_small):
    root.mkdir()
    good = (raw_small / "train.jsonl").read_bytes().splitlines()[:3]
    bad = [
        json.dumps({"project": "x", "commit_id": "", "target": 0, "func": "", "idx": 1}).encode(),
        json.dumps({"project": "x", "commit_id": "", "target": 2, "func": "int f();", "idx": 2}).encode(),
        json.dumps({"project": "x", "commit_id": "", "target": "yes", "func": "int f();", "idx": 3}).encode(),
        json.dumps({"project": "x", "commit_id": "", "func": "int f();", "idx": 4}).encode(),
        b'{"project": "x", "target": 1, "func": "int f(',
        b'{"project": "x", "target": 1, "func": "int \xff\xfe f();"}',
        json.dumps({"project": "x", "target": 1, "func": "int f() {\x00}"}).encode(),
        bytes(b for b in range(256) if b != 0x0A),  # binary garbage (one line)
        b'[1, 2, 3]',
    ]
    (root / "train.jsonl").write_bytes(b"\n".join(good + bad) + b"\n")
    (root / "valid.jsonl").write_bytes((raw_small / "valid.jsonl").read_bytes())
    (root / "test.jsonl").write_bytes((raw_small / "test.jsonl").read_bytes())
    return len(good), len(bad)


def test_bad_lines_are_rejected_with_reasons_and_counted(tmp_path, raw_small):
    n_good, n_bad = _write_bad_source(tmp_path / "src", raw_small)
    manifest = import_codexglue(tmp_path / "src", tmp_path / "out")
    counts = manifest["counts"]["train"]
    assert counts == {"read": n_good + n_bad, "written": n_good, "rejected": n_bad}
    reasons = [r["reason"] for r in _rows(tmp_path / "out" / "rejects.jsonl")]
    for expected in ("empty", "must be 0 or 1, got 2", "got 'yes'", "missing field", "malformed JSON",
                     "not valid UTF-8", "NUL", "not a JSON object"):
        assert any(expected in r for r in reasons), (expected, reasons)


def test_dedup_removes_train_copies_of_test_functions(tmp_path, raw_small):
    src = tmp_path / "src"
    src.mkdir()
    test_rows = (raw_small / "test.jsonl").read_text().splitlines()
    leaked = json.loads(test_rows[0])
    leaked["func"] = leaked["func"].replace("\n", "\n  ")  # reformatting does not hide it
    train = (raw_small / "train.jsonl").read_text() + json.dumps(leaked) + "\n"
    (src / "train.jsonl").write_text(train)
    for split in ("valid", "test"):
        (src / f"{split}.jsonl").write_text((raw_small / f"{split}.jsonl").read_text())
    plain = import_codexglue(src, tmp_path / "plain")
    assert plain["audit"]["cross_split"]["train-test"]["shared_functions"] == 1
    deduped = import_codexglue(src, tmp_path / "dedup", dedup=True)
    assert deduped["extra"]["dedup"]["removed_from_train"] == 1
    assert deduped["counts"]["train"]["written"] == plain["counts"]["train"]["written"] - 1
    assert deduped["counts"]["train"]["rejected"] == 1


def test_missing_source_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="neither"):
        (tmp_path / "empty").mkdir()
        import_codexglue(tmp_path / "empty", tmp_path / "out")


def test_one_definition_of_the_same_function_for_audit_merge_and_corpus():
    """The import audit, --dedup, the merge and the corpus's Devign exclusion share neardup.text_key: a copy that
    differs in comments and token spacing is the same function to all of them."""
    from streamguard.data import corpus, merge, stats
    from streamguard.data.neardup import text_key
    a = "int f(int *p) {\n  return p->x; /* read */\n}\n"
    b = "int f ( int * p ) { return p -> x ; }  // same tokens\n"
    assert text_key(a) == text_key(b) and corpus.text_key is text_key and merge.text_key is text_key
    assert stats.hashes([{"func": a}]) == stats.hashes([{"func": b}])
    report = stats.audit({"train": [{"func": a, "target": 0}], "test": [{"func": b, "target": 0}]})
    assert report["cross_split"]["train-test"]["shared_functions"] == 1
