"""The merge on real rows: Devign rows (tests/fixtures/collected/devign_base, with the real Devign functions that
Big-Vul and ReVeal also hold) plus Big-Vul / ReVeal / PrimeVul imports. The leakage guarantee is checked by
brute force (every train x evaluation pair's exact shingle Jaccard), independent of the merge's LSH."""
import json
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.data.neardup import DEFAULT_THRESHOLD, jaccard, normalised_shingle_hashes, shingle_hashes, text_key

FIX = Path(__file__).parent / "fixtures" / "collected"


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("merge")
    imports = [["bigvul", "--source", str(FIX / "bigvul.csv")],
               ["jsonl", "--source", str(FIX / "reveal.jsonl"), "--name", "reveal",
                "--map", "project=proj,func=code,target=label"],
               ["primevul", "--source", str(FIX / "primevul.jsonl")]]
    adds = []
    for args in imports:
        out = tmp / args[0]
        assert main(["data", "import", *args, "--out", str(out)]) == 0
        adds += ["--add", str(out)]
    assert main(["data", "merge", "--base", str(FIX / "devign_base"), *adds, "--out", str(tmp / "m"),
                 "--holdout", "bigvul=0.4"]) == 0
    return tmp / "m"


def test_nothing_equal_or_near_equal_to_evaluation_reaches_train(merged):
    train = _rows(merged / "train.jsonl")
    evaluation = _rows(merged / "valid.jsonl") + _rows(merged / "test.jsonl") + _rows(merged / "heldout/test.jsonl")
    ev_keys = {text_key(r["func"]) for r in evaluation}
    for shingles in (shingle_hashes, normalised_shingle_hashes):  # raw tokens, and identifiers/literals abstracted
        ev_sh = [shingles(r["func"]) for r in evaluation]
        for r in train:
            assert text_key(r["func"]) not in ev_keys
            sh = shingles(r["func"])
            assert max(jaccard(sh, e) for e in ev_sh) < DEFAULT_THRESHOLD, r["uid"]
    dropped = _rows(merged / "dropped.jsonl")
    # the real overlaps: Big-Vul functions in Devign valid (1) and test (3), ReVeal functions in Devign valid (2)
    equal = [d for d in dropped if d["reason"] == "equal to an evaluation function"]
    assert {d["source"] for d in equal} >= {"bigvul", "reveal"} and len(equal) >= 6
    assert any(d["reason"] == "near-equal to an evaluation function" and d["jaccard"] < 1 for d in dropped)


def test_base_keeps_its_valid_and_test_and_every_row_is_accounted_for(merged):
    for split in ("valid", "test"):
        assert _rows(merged / f"{split}.jsonl") == _rows(FIX / "devign_base" / f"{split}.jsonl") or \
            [r["func"] for r in _rows(merged / f"{split}.jsonl")] == \
            [r["func"] for r in _rows(FIX / "devign_base" / f"{split}.jsonl")]
    m = json.loads((merged / "manifest.json").read_text())["extra"]
    kept = sum(len(_rows(merged / f)) for f in ("train.jsonl", "valid.jsonl", "test.jsonl", "heldout/test.jsonl"))
    assert m["read"] == kept + len(_rows(merged / "dropped.jsonl"))
    for src, s in m["per_source"].items():
        assert s["read"] == sum(s["kept"].values()) + sum(s["dropped"].values()), src
    assert m["conflicts"]["conflict_groups_with_base"] >= 1  # a real Big-Vul/Devign label disagreement
    uids = [r["uid"] for f in ("train", "valid", "test") for r in _rows(merged / f"{f}.jsonl")]
    assert len(uids) == len(set(uids))


def test_pairs_and_cves_are_never_split(merged):
    where: dict[str, set[str]] = {}
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "heldout/test.jsonl"):
        for r in _rows(merged / name):
            for key in (f"pair:{r.get('pair_id')}" if r.get("pair_id") else "", f"cve:{r.get('cve') or ''}"):
                if key and key != "cve:":
                    where.setdefault(key, set()).add(name)
    assert where and all(len(v) == 1 for v in where.values()), {k: v for k, v in where.items() if len(v) > 1}
    held = _rows(merged / "heldout/test.jsonl")
    assert held and {r["source"] for r in held} == {"bigvul"}
    # the fixture holds a CVE with two pairs: the test above would catch a split of it
    pairs_per_cve: dict[str, set[str]] = {}
    for name in ("train.jsonl", "heldout/test.jsonl"):
        for r in _rows(merged / name):
            if r.get("cve"):
                pairs_per_cve.setdefault(r["cve"], set()).add(r["pair_id"])
    assert max(len(p) for p in pairs_per_cve.values()) >= 2


def test_merge_refuses_unknown_holdout_source_and_missing_base(tmp_path, capsys):
    (tmp_path / "b").mkdir()
    assert main(["data", "merge", "--base", str(tmp_path / "b"), "--add", str(tmp_path / "b"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "has no train.jsonl" in capsys.readouterr().err


def test_every_raw_dataset_has_one_manifest_schema(merged, tmp_path):
    """Imports (codexglue, collector) and the merge write one manifest schema through RawDir (issue 23): the
    common fields at the top, with per-file sha256 that match the files; writer-specific fields under ``extra``."""
    from streamguard.data.ingest import import_codexglue
    from streamguard.data.rawdir import SCHEMA, RawDir
    from streamguard.provenance import sha256_file
    import_codexglue(FIX / "devign_base", tmp_path / "base")
    folders = [merged, merged / "heldout", merged.parent / "bigvul", merged.parent / "jsonl", tmp_path / "base"]
    common = {"schema", "source", "made_by", "counts", "label_balance", "sha256", "audit", "seconds", "environment",
              "extra"}
    made_by = set()
    for folder in folders:
        m = RawDir(folder).manifest()
        assert set(m) == common and m["schema"] == SCHEMA, folder
        assert set(m["counts"]) == set(m["label_balance"]) and m["counts"], folder
        for split, bal in m["label_balance"].items():
            assert bal["count"] == m["counts"][split]["written"], (folder, split)
        for name, digest in m["sha256"].items():
            assert sha256_file(folder / name) == digest, (folder, name)
        made_by.add(m["made_by"])
    assert made_by == {"merge", "import-collected", "import-codexglue"}
