"""A scanner a team can live with (issue 26): function fingerprints that survive moves, reformatting and renamed
locals; baselines (--write-baseline / --baseline); in-source suppressions (streamguard: ignore[reason]).

The function under test is a real one: ``hex2bin`` from Linux's lib/hexdump.c (tests/fixtures/kernel_c).
``--threshold 0`` flags every scored function, so "flagged" does not depend on the small test model."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from scan_fixture import make_bundle

from streamguard.cli import main
from streamguard.data.extract import extract_functions, function_nodes
from streamguard.scan import formats, suppress
from streamguard.scan.fingerprint import SARIF_KEY, fingerprint, local_names

FIXTURES = Path(__file__).parent / "fixtures"
HEXDUMP = FIXTURES / "kernel_c" / "lib" / "hexdump.c"
ORIGINAL = HEXDUMP.read_text()
HEX2BIN = ORIGINAL[ORIGINAL.index("int hex2bin(u8 *dst"):ORIGINAL.index("EXPORT_SYMBOL(hex2bin);")].rstrip()
# the same function reformatted (one statement per line gone, other brace style, comments added), locals renamed
REFORMATTED = """int hex2bin(u8 *dst, const char *src, size_t count) {  /* now with comments */
    while (count--)
    {
        int high,   lo;   // two nibbles
        high = hex_to_bin(*src++); if (unlikely(high < 0)) return -EINVAL;
        lo = hex_to_bin( *src++ );
        if (unlikely(lo < 0))
            return -EINVAL;
        *dst++ = (high << 4) | lo;
    }
    return 0;
}"""
SUPPRESSED = HEX2BIN.replace("\t\tint hi, lo;", "\t\tint hi, lo;\t/* streamguard: ignore[src is checked by callers] */")
ABOVE = "// streamguard: ignore[bounded by its only caller]\n"
MOVED = "\n".join(f"/* filler line {i} */" for i in range(50)) + "\n"  # pushes the function 50 lines down


def _variant(function: str, move: bool = False) -> str:
    """hexdump.c with hex2bin replaced by ``function``, 50 lines further down when ``move``."""
    out = ORIGINAL.replace(HEX2BIN, (MOVED if move else "") + function)
    assert out != ORIGINAL
    return out


def _fp(source: str, name: str = "hex2bin", path: str = "lib/hexdump.c") -> tuple[str, int]:
    fn = next(f for f in extract_functions(source, path) if f.name == name)
    return fingerprint(path, name, fn.code), fn.start_line


def test_fingerprint_survives_moves_layout_comments_and_renamed_locals():
    base, line = _fp(ORIGINAL)
    moved, moved_line = _fp(_variant(REFORMATTED, move=True))
    assert moved_line == line + 50 and moved == base
    assert _fp(_variant(re.sub(r"\bhi\b", "high_nibble", HEX2BIN)))[0] == base  # a local renamed
    assert _fp(_variant(re.sub(r"\bsrc\b", "in", HEX2BIN)))[0] == base  # a parameter renamed
    assert local_names(HEX2BIN, "hex2bin") == {"dst", "src", "count", "hi", "lo"}


@pytest.mark.parametrize("change", [
    ("hi < 0", "hi < 1"),                        # a bound
    ("(hi << 4) | lo", "(hi << 4) & lo"),        # an operator
    ("hi = hex_to_bin", "hi = hex_to_bin_fast"),  # a called function
    ("size_t count", "int count"),               # a type
])
def test_fingerprint_changes_with_the_logic(change):
    assert _fp(_variant(HEX2BIN.replace(*change)))[0] != _fp(ORIGINAL)[0]
    assert _fp(ORIGINAL, path="lib/other.c")[0] != _fp(ORIGINAL)[0]  # the path is part of it


def test_fields_are_not_locals():
    code = "int f(struct s *p) { int len = p->len; return len + p->len + q.len; }"
    renamed = "int f(struct s *p) { int n = p->len; return n + p->len + q.len; }"
    assert fingerprint("a.c", "f", code) == fingerprint("a.c", "f", renamed)
    assert fingerprint("a.c", "f", code) != fingerprint("a.c", "f", code.replace("p->len;", "p->size;"))


def test_fingerprint_from_the_files_tree_equals_the_one_from_the_function_alone():
    """The scan takes locals from the file's tree (one parse); baselines written before must still match."""
    checked = 0
    for path in sorted((FIXTURES / "kernel_c" / "lib").glob("*.c")):
        for fn, node in function_nodes(path.read_bytes(), path.name):
            assert fingerprint(fn.path, fn.name, fn.code, node) == fingerprint(fn.path, fn.name, fn.code), fn.name
            checked += 1
    assert checked > 100


@pytest.fixture(scope="module")
def model(processed_small, tmp_path_factory):
    return make_bundle(processed_small, tmp_path_factory.mktemp("baselinemodel"))[1]


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "proj"
    (root / "lib").mkdir(parents=True)
    shutil.copy(HEXDUMP, root / "lib" / "hexdump.c")
    return root


def _scan(bundle: Path, tree: Path, fmt: str = "json", *extra: str) -> tuple[int, dict]:
    out = tree.parent / f"report.{fmt}"
    rc = main(["scan", str(tree), "--model", str(bundle), "--root", str(tree), "--threshold", "0",
               "--format", fmt, "--out", str(out), *extra])
    return rc, json.loads(out.read_text()) if fmt in ("json", "sarif") else out.read_text()


def _names(items: list[dict]) -> set[str]:
    return {f["function"] for f in items}


def test_baseline_keeps_moved_reformatted_renamed_function_and_reports_a_changed_bound(model, tree, capsys):
    base = tree.parent / "baseline.json"
    rc, before = _scan(model, tree, "json", "--write-baseline", str(base))
    assert rc == 1 and "baseline written" in capsys.readouterr().err
    recorded = json.loads(base.read_text())
    assert recorded["format"] == "streamguard-scan-baseline" and recorded["version"] == 1
    assert _names(recorded["findings"]) == _names(before["findings"]) and "hex2bin" in _names(recorded["findings"])
    first = next(f for f in before["findings"] if f["function"] == "hex2bin")

    hexdump = tree / "lib" / "hexdump.c"
    hexdump.write_text(_variant(REFORMATTED, move=True))  # moved 50 lines, reformatted, renamed
    rc, after = _scan(model, tree, "json", "--baseline", str(base))
    assert rc == 0 and after["findings"] == [] and after["summary"]["vulnerable"] == 0
    again = next(f for f in after["baseline"]["baselined"] if f["function"] == "hex2bin")
    assert again["fingerprint"] == first["fingerprint"] and again["start_line"] == first["start_line"] + 50
    assert after["baseline"]["gone"] == [] and after["summary"]["baselined"] == len(recorded["findings"])
    jsonschema.validate(after, formats.json_schema())

    hexdump.write_text(_variant(HEX2BIN.replace("hi < 0", "hi < 1")))
    rc, changed = _scan(model, tree, "json", "--baseline", str(base))
    assert rc == 1 and _names(changed["findings"]) == {"hex2bin"}  # reported again
    assert _names(changed["baseline"]["gone"]) == {"hex2bin"} and changed["summary"]["baseline_gone"] == 1
    jsonschema.validate(changed, formats.json_schema())
    _, table = _scan(model, tree, "table", "--baseline", str(base))
    assert "1 baselined functions gone" in " ".join(table.split())


def test_gone_lists_deleted_functions_only_under_the_scanned_paths(model, tree):
    shutil.copy(FIXTURES / "kernel_c" / "lib" / "bsearch.c", tree / "bsearch.c")
    base = tree.parent / "baseline.json"
    _scan(model, tree, "json", "--write-baseline", str(base))
    out = tree.parent / "lib.json"  # only lib/: bsearch.c's entries are out of scope, not gone
    assert main(["scan", str(tree / "lib"), "--model", str(model), "--root", str(tree), "--threshold", "0",
                 "--format", "json", "--out", str(out), "--baseline", str(base)]) == 0
    assert json.loads(out.read_text())["baseline"]["gone"] == []
    (tree / "bsearch.c").unlink()
    rc, rep = _scan(model, tree, "json", "--baseline", str(base))
    assert rc == 0 and {(g["path"], g["function"]) for g in rep["baseline"]["gone"]} == {("bsearch.c", "bsearch")}


def test_suppressed_functions_do_not_take_max_findings_slots(model, tree):
    _, rep = _scan(model, tree, "json")
    top = rep["findings"][0]
    lines = ORIGINAL.split("\n")
    lines.insert(top["start_line"] - 1, "// streamguard: ignore[the highest score, reviewed]")
    (tree / "lib" / "hexdump.c").write_text("\n".join(lines))
    rc, rep = _scan(model, tree, "json", "--max-findings", "1")
    assert rc == 1 and rep["summary"]["vulnerable"] == 1 and rep["summary"]["suppressed"] == 1
    assert rep["suppressed"][0]["function"] == top["function"] and rep["findings"][0]["function"] != top["function"]


def test_baseline_written_twice_is_byte_identical(model, tree):
    a, b = tree.parent / "a.json", tree.parent / "b.json"
    _scan(model, tree, "json", "--write-baseline", str(a))
    _scan(model, tree, "json", "--baseline", str(a), "--write-baseline", str(b))
    assert a.read_bytes() == b.read_bytes()


def test_suppression_inside_and_above_in_json_sarif_and_table(model, tree):
    text = _variant(SUPPRESSED).replace("char *bin2hex(", ABOVE + "char *bin2hex(")
    (tree / "lib" / "hexdump.c").write_text(text)
    rc, rep = _scan(model, tree, "json")
    jsonschema.validate(rep, formats.json_schema())
    got = {s["function"]: s["suppression"] for s in rep["suppressed"]}
    assert got.keys() == {"hex2bin", "bin2hex"} and not {"hex2bin", "bin2hex"} & _names(rep["findings"])
    assert got["hex2bin"]["justification"] == "src is checked by callers" and got["hex2bin"]["kind"] == "inSource"
    assert got["bin2hex"]["justification"] == "bounded by its only caller"
    assert rep["summary"]["suppressed"] == 2 and rep["summary"]["functions_scored"] == 5

    _, sarif = _scan(model, tree, "sarif")
    jsonschema.validate(sarif, json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text()))
    results = sarif["runs"][0]["results"]
    sup = {r["locations"][0]["logicalLocations"][0]["name"]: r["suppressions"] for r in results if "suppressions" in r}
    assert sup == {"hex2bin": [{"kind": "inSource", "justification": "src is checked by callers"}],
                   "bin2hex": [{"kind": "inSource", "justification": "bounded by its only caller"}]}
    assert all(r["partialFingerprints"][SARIF_KEY] for r in results) and len(results) == 5
    _, table = _scan(model, tree, "table")
    assert "2 suppressed in source" in " ".join(table.split()) and "hex2bin" not in table
    _, html = _scan(model, tree, "html")
    assert "<th>suppressed in source (streamguard: ignore)</th><td>2</td>" in html


def test_marker_must_be_a_comment_directly_above_or_inside():
    lines = ['const char *s = "streamguard: ignore";', "", "// streamguard: ignore", "",
             "/*", " * streamguard: ignore[why]", " */", "int f(void)", "{", "\treturn 0;", "}"]
    assert suppress.find(lines, 8, 11) == suppress.Marker(6, "why")  # a block comment ending directly above
    assert suppress.find(lines, 1, 1) is None                        # in a string, not a comment
    assert suppress.find(lines[:4] + ["int g(void) { return 0; }"], 5, 5) is None  # a blank line between
    assert suppress.find(["int h(void) { return 0; } // streamguard: ignored"], 1, 1) is None


@pytest.mark.parametrize("content, says", [
    ("{not json", "not JSON"),
    ('["a"]', "not a streamguard scan baseline"),
    ('{"format": "streamguard-scan-baseline", "version": 2, "fingerprint": "v1", "findings": []}', "version 2"),
    ('{"format": "streamguard-scan-baseline", "version": true, "fingerprint": "v1", "findings": []}', "version"),
    ('{"format": "streamguard-scan-baseline", "version": 1, "fingerprint": "v1", "findings": [{"path": "a"}]}',
     "finding 0"),
    (None, "no such file"),
])
def test_a_bad_baseline_is_one_line_and_exit_2(model, tree, capsys, content, says):
    base = tree.parent / "baseline.json"
    if content is not None:
        base.write_text(content)
    assert main(["scan", str(tree), "--model", str(model), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "Traceback" not in err[0], err
    assert main(["scan", str(tree), "--model", str(model), "--write-baseline", str(tree / "no" / "b.json")]) == 2
    assert main(["scan", str(tree), "--model", str(model), "--write-baseline", str(base), "--diff", "HEAD"]) == 2
    assert "without --diff" in capsys.readouterr().err
