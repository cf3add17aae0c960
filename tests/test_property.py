"""Preprocessing any string never raises, and always yields a valid record or a documented reject."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamguard.data.records import validate_processed
from streamguard.features import preprocess as stage
from streamguard.features.featurize import load_vocab

C_PIECES = ["int ", "char *p", "{", "}", "(", ")", ";", "\n", "#define X(a) a\n", "#if 0\n", "#endif\n", "memcpy(",
            "free(p);", "return ", "if (x) ", "/* c */", "\"str\"", "'\\0'", "->", "++", "\t", "é", "\U0001F600",
            "0x1f", "goto out;", "out:", "\\", "??=", "\x01"]
code_like = st.lists(st.one_of(st.sampled_from(C_PIECES), st.text(max_size=8)), max_size=60).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.one_of(st.text(max_size=300), code_like))
def test_any_string_gives_a_valid_record_or_a_reasoned_reject(processed_small, code):
    if getattr(stage._WORKER.get("f"), "max_tokens", None) != 64:  # other tests may have set a 512 budget
        meta = json.loads((processed_small / "preprocessing_metadata.json").read_text())
        stage._init_worker(str(processed_small / "tokenizer"), meta["tokenizer"], 64, {"max_nodes": 200},
                           load_vocab(processed_small / "node_vocab.json"), "codexglue")
    split, row, line, meta, reason = stage.record_task(("test", 0, {"func": code, "target": 1}))
    if line is None:
        assert not code.strip() or "\x00" in code or any(0xD800 <= ord(c) <= 0xDFFF for c in code), reason
        assert not reason.startswith("internal error"), reason
        return
    rec = json.loads(line)
    vocab_size = stage._WORKER["f"].tokenizer.get_vocab_size()
    validate_processed(rec, vocab_size, 1000)
    assert len(rec["tokens"]) <= 64
