import json
import shutil

from streamguard.config import PreprocessConfig
from streamguard.data.ingest import import_codexglue
from streamguard.data.records import validate_processed
from streamguard.features.featurize import load_vocab
from streamguard.features.preprocess import preprocess


def _records(d, split):
    return [json.loads(line) for line in (d / f"{split}.jsonl").read_text().splitlines()]


def test_records_follow_the_schema_and_counts_add_up(processed_small):
    meta = json.loads((processed_small / "preprocessing_metadata.json").read_text())
    vocab = len(load_vocab(processed_small / "node_vocab.json"))
    assert vocab == meta["node_vocab_size"] <= 1000
    for split in ("train", "valid", "test"):
        recs = _records(processed_small, split)
        c = meta["counts"][split]
        assert c["read"] == c["written"] + c["rejected"] == len(recs) + c["rejected"]
        for rec in recs:
            validate_processed(rec, meta["tokenizer"]["vocab_size"], vocab)
            assert rec["metadata"]["num_tokens"] == len(rec["tokens"]) <= 512
            assert rec["id"] == f"CODEXGLUE-{split.upper()}-{rec['metadata']['row']}"
    assert meta["ast"]["success_rate"] >= 0.9
    assert meta["graph_stats"]["recommended_batch_size"] >= 1
    assert meta["tokenizer"]["name"] == "bpe" and meta["trimming"]["trimmed"] > 0


def test_trimmed_records_keep_risky_code_and_tokens_describe_the_code(processed_small):
    trimmed = [r for r in _records(processed_small, "train") if r["metadata"]["trim_strategy"] == "risky_window"]
    assert trimmed
    for rec in trimmed:
        assert rec["metadata"]["risky_apis"]
        spans = [s for s in rec["token_offsets"] if s != [0, 0]]
        assert spans[0][0] == 0 and spans[-1][1] == len(rec["code"])


def test_rerun_is_skipped_and_reuse_from_shares_tokenizer_and_vocab(processed_small, raw_small, tmp_path):
    raw = tmp_path / "raw"
    import_codexglue(raw_small, raw)
    cfg = PreprocessConfig(tokenizer="bpe", workers=2, reuse_from=str(processed_small))
    meta = preprocess(raw, tmp_path / "reused", cfg)
    before = (tmp_path / "reused" / "train.jsonl").stat().st_mtime_ns
    again = preprocess(raw, tmp_path / "reused", cfg)
    assert (tmp_path / "reused" / "train.jsonl").stat().st_mtime_ns == before and again == meta
    base = json.loads((processed_small / "preprocessing_metadata.json").read_text())
    assert meta["tokenizer"]["sha256"] == base["tokenizer"]["sha256"]
    assert (tmp_path / "reused" / "node_vocab.json").read_text() == (processed_small / "node_vocab.json").read_text()
    # two workers give the same records as one
    assert _records(tmp_path / "reused", "test") == _records(processed_small, "test")


def test_quick_test_and_a_huge_function(tmp_path, raw_small):
    src, raw = tmp_path / "src", tmp_path / "raw"
    shutil.copytree(raw_small, src)
    row = json.loads((src / "test.jsonl").read_text().splitlines()[0])
    row["func"] = "int f(char *d, char *s) {\n" + "    x = x + 1;\n" * 70000 + "    strcpy(d, s);\n}\n"
    row["idx"] = 10**9  # a new function: not a repeated id
    assert len(row["func"]) > 1_000_000
    with open(src / "test.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    import_codexglue(src, raw)
    cfg = PreprocessConfig(tokenizer="bpe", bpe_vocab_size=1000, workers=1, quick_test=True, quick_test_size=13)
    meta = preprocess(raw, tmp_path / "out", cfg)
    assert meta["counts"]["train"]["read"] == 13
    huge = _records(tmp_path / "out", "test")[-1]
    assert "strcpy" in huge["code"] and huge["metadata"]["trim_strategy"] == "risky_window"
    assert len(huge["tokens"]) == 512


def test_node_vocabulary_does_not_depend_on_the_order_counts_arrive_in():
    from collections import Counter

    from streamguard.features.featurize import build_vocab

    a_types, a_texts = Counter({"call_expression": 5, "identifier": 5}), Counter({"x": 2, "y": 2, "z": 1})
    b_types, b_texts = Counter({"identifier": 5, "call_expression": 5}), Counter({"z": 1, "y": 2, "x": 2})
    assert build_vocab(a_types, a_texts, 4) == build_vocab(b_types, b_texts, 4) == [
        "<unk>", "call_expression", "identifier", "x"]
