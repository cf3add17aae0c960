"""Collector imports on real rows (tests/fixtures/collected, cut from ../shared/data/collected): each format's
good rows are written with their source, bad ones rejected with a reason and a bounded raw prefix."""
import json
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.data.ingest import RAW_PREFIX_CHARS

FIX = Path(__file__).parent / "fixtures" / "collected"


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _import(tmp_path: Path, *args: str) -> tuple[list[dict], list[dict], dict]:
    out = tmp_path / "out"
    assert main(["data", "import", *args, "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    pool, rejects = _rows(out / "pool.jsonl"), _rows(out / "rejects.jsonl")
    c = manifest["counts"]["pool"]
    assert c["read"] == c["written"] + c["rejected"] and c["written"] == len(pool) and c["rejected"] == len(rejects)
    assert all(len(r["raw"]) <= RAW_PREFIX_CHARS and r["reason"] for r in rejects)
    assert len({r["idx"] for r in pool}) == len(pool)
    return pool, rejects, manifest


def test_bigvul_csv_gives_pairs_and_rejects_bad_rows(tmp_path):
    pool, rejects, manifest = _import(tmp_path, "bigvul", "--source", str(FIX / "bigvul.csv"))
    reasons = " | ".join(r["reason"] for r in rejects)
    assert "'target' must be 0 or 1, got 'maybe'" in reasons
    assert "'func' is empty" in reasons
    assert "func_after equals func_before" in reasons
    assert "row has 2 cells, the header 8" in reasons  # the broken last row (an unterminated quote)
    pairs: dict[str, list[int]] = {}
    for r in pool:
        assert r["source"] == "bigvul" and r["idx"].startswith("bigvul:")
        if r["pair_id"]:
            pairs.setdefault(r["pair_id"], []).append(r["target"])
    # a before (1) and its after (0); the bad rows leave one half: a fix that left its function unchanged
    # (before only) and an empty before (after only)
    assert sorted(sorted(t) for t in pairs.values()).count([0, 1]) == 11 and len(pairs) == 13
    assert sum(r["cve"].startswith("CVE-") for r in pool) == 22  # the 11 complete pairs
    assert manifest["extra"]["groups"]["pairs"] == len(pairs)


def test_primevul_jsonl_rejects_malformed_lines(tmp_path):
    pool, rejects, _ = _import(tmp_path, "primevul", "--source", str(FIX / "primevul.jsonl"))
    assert len(pool) == 6 and all(r["cve"] and r["cwe"].startswith("CWE-") for r in pool)
    assert [r["line"] for r in rejects] == [7, 8, 9]
    assert "malformed JSON" in rejects[0]["reason"] and "got 2" in rejects[1]["reason"]
    assert "missing field(s): func" in rejects[2]["reason"] and '"idx": 3' in rejects[2]["raw"]


def test_generic_jsonl_with_a_field_map(tmp_path):
    pool, rejects, manifest = _import(tmp_path, "jsonl", "--source", str(FIX / "reveal.jsonl"), "--name", "reveal",
                                      "--map", "project=proj,func=code,target=label")
    assert manifest["source"] == "reveal" and all(r["source"] == "reveal" for r in pool)
    assert {r["project"] for r in pool} == {"chrome"}
    assert [r["reason"] for r in rejects] == ["'target' must be 0 or 1, got 'yes' (exactly these integers)",
                                              "mapped field 'code' (for func) is missing"]


def test_csv_with_a_field_map_reads_labels_from_text(tmp_path):
    pool, _, _ = _import(tmp_path, "csv", "--source", str(FIX / "bigvul.csv"), "--name", "bvcsv",
                         "--map", "func=func_before,target=vul,cve=CVE ID")
    assert pool and {r["target"] for r in pool} <= {0, 1} and all(r["pair_id"] == "" for r in pool)


def test_cdir_rejects_missing_undecodable_and_escaping_files(tmp_path):
    cdir = FIX / "cdir"
    pool, rejects, _ = _import(tmp_path, "cdir", "--source", str(cdir), "--labels", str(cdir / "labels.csv"))
    assert len(pool) == 4 and all(r["orig_idx"].endswith(".c") for r in pool)
    reasons = [r["reason"] for r in rejects]
    assert any("not valid UTF-8" in x for x in reasons) and any("not found" in x for x in reasons)
    assert any("outside" in x for x in reasons) and any("got 'x'" in x for x in reasons)


@pytest.mark.parametrize("args, message", [
    (["jsonl", "--source", "nope.jsonl"], "source file not found"),
    (["jsonl", "--source", str(FIX / "reveal.jsonl"), "--map", "func"], "is not dst=src"),
    (["jsonl", "--source", str(FIX / "reveal.jsonl"), "--map", "label=x"], "is not one of"),
    (["jsonl", "--source", str(FIX / "reveal.jsonl"), "--name", "Bad Name"], "lower-case"),
    (["cdir", "--source", str(FIX / "cdir")], "needs --labels"),
])
def test_user_errors_are_one_line(tmp_path, capsys, args, message):
    assert main(["data", "import", *args, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
