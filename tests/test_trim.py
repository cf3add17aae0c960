import json

from streamguard.data.risky_api import RISKY_APIS
from streamguard.features.tokenize import SafeTokenizer
from streamguard.features.trim import choose_window, find_risky_spans


def test_at_least_fifteen_risky_apis_and_wrappers_count():
    assert len(RISKY_APIS) >= 15
    found = [name for _, _, name in find_risky_spans(
        "strcpy(a,b); strcat(a,b); sprintf(a,\"%s\",b); vsprintf(a,f,ap); gets(s); scanf(\"%d\",&x); "
        "memcpy(a,b,n); memmove(a,b,n); strncpy(a,b,n); alloca(n); malloc(n); free(p); realloc(p,n); "
        "system(c); popen(c,\"r\"); execvp(f,a); av_mallocz(n); g_free(p);")]
    for api in ("strcpy", "strcat", "sprintf", "vsprintf", "gets", "scanf", "memcpy", "memmove", "strncpy",
                "alloca", "malloc", "free", "realloc", "system", "popen", "exec"):
        assert api in found, api
    assert found.count("malloc") == 2 and found.count("free") == 2


def test_safe_code_has_no_spans_and_is_truncated_from_the_start():
    assert find_risky_spans("int freedom = 1; int mallocs; return x + y;") == []
    offsets = [(i, i + 1) for i in range(100)]
    w = choose_window(offsets, [], 30)
    assert (w.start, w.end, w.strategy) == (0, 30, "truncate")


def test_short_code_is_kept_whole():
    w = choose_window([(0, 1), (2, 3)], [(0, 1, "free")], 10)
    assert (w.start, w.end, w.strategy) == (0, 2, "none")


def test_the_window_keeps_the_risky_span_of_a_long_real_function(processed_small, raw_small):
    tok = SafeTokenizer.load(processed_small / "tokenizer")
    for line in (raw_small / "train.jsonl").read_text().splitlines():
        code = json.loads(line)["func"]
        ids, offsets = tok.encode(code)
        spans = find_risky_spans(code)
        if len(ids) <= 510 or not spans or spans[0][0] < offsets[400][0]:
            continue  # want a function whose first risky call lies past a plain truncation
        w = choose_window(offsets, spans, 510)
        assert w.strategy == "risky_window" and w.end - w.start == 510
        kept = code[offsets[w.start][0]:offsets[w.end - 1][1]]
        assert any(code[s:e] in kept for s, e, _ in spans)
        return
    raise AssertionError("the fixture should hold a long function with a late risky call")
