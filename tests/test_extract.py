"""The C function extractor and file walker shared by scan and corpus building (real code, bad files)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streamguard.data import extract
from streamguard.data.extract import CFunction, extract_functions, iter_c_files

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "test.jsonl"

C_FILE = b"""#include <stdio.h>
/* a comment with a { brace */
static int add(int a, int b)
{
\treturn a + b;
}

#ifdef CONFIG_X
char *dup_name(const char *s) {
\treturn strdup(s);
}
#endif

SYSCALL_DEFINE3(setpriority, int, which, int, who,
\t\tint, niceval)
{
\treturn which + who;
}

int (*get_handler(void))(int) { return 0; }
struct point { int x; };
"""


def test_extracts_names_lines_and_byte_spans():
    fns = extract_functions(C_FILE, "a.c")
    assert [f.name for f in fns] == ["add", "dup_name", "setpriority", "get_handler"]
    add = fns[0]
    assert (add.start_line, add.end_line) == (3, 6)
    assert C_FILE[add.start_byte:add.end_byte].decode() == add.code
    assert add.code.startswith("static int add") and add.code.endswith("}")
    assert fns[2].start_line == 14 and fns[2].code.startswith("SYSCALL_DEFINE3(") and fns[2].end_line == 18
    assert all(isinstance(f, CFunction) and f.path == "a.c" for f in fns)


def test_str_and_bytes_agree_and_garbage_never_raises():
    assert extract_functions(C_FILE.decode()) == extract_functions(C_FILE)
    for junk in (b"", b"\xff\xfe\x00garbage{{{", b"}}}} int f( {", bytes(range(256)) * 4):
        assert isinstance(extract_functions(junk), list)


def test_non_utf8_keeps_byte_offsets():
    src = b"int f(void)\n{\n\treturn '\xe9';\n}\nint g(void) { return 1; }\n"
    fns = extract_functions(src)
    assert [f.name for f in fns] == ["f", "g"]
    assert src[fns[1].start_byte:fns[1].end_byte] == b"int g(void) { return 1; }"
    assert "\ufffd" in fns[0].code


def test_real_devign_functions_are_found():
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()][:60]
    found = [extract_functions(r["func"]) for r in rows]
    # Devign rows are single functions; tree-sitter without the headers misses a few odd ones.
    assert sum(len(f) == 1 for f in found) >= 55
    for row, fns in zip(rows, found):
        if len(fns) == 1:
            assert fns[0].code.strip() == row["func"].strip()


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "vendor").mkdir()
    (root / "src" / "a.c").write_bytes(C_FILE)
    (root / "src" / "a.h").write_text("static inline int h(void) { return 0; }\n")
    (root / "src" / "notes.txt").write_text("int f(void) { return 0; }\n")
    (root / "src" / "sub" / "latin1.c").write_bytes(b"int f(void) { return '\xe9'; }\n")
    (root / "src" / "sub" / "blob.c").write_bytes(b"\x7fELF\x00\x00binary")
    (root / "src" / "big.c").write_bytes(b"int x;\n" * 2000)
    (root / ".git" / "hidden.c").write_text("int g(void) { return 0; }\n")
    (root / "vendor" / "v.c").write_text("int v(void) { return 0; }\n")
    os.symlink(root, root / "src" / "loop")               # a directory loop: never followed
    os.symlink(root / "missing.c", root / "src" / "dangling.c")
    return root


def test_walk_accounts_for_every_candidate(tmp_path):
    root = _tree(tmp_path)
    files = list(iter_c_files([root / "src", root / "vendor", root / "nope"], exclude=["vendor"],
                              root=root, max_bytes=4096))
    by_path = {f.path: f for f in files}
    assert set(by_path) == {"src/a.c", "src/a.h", "src/big.c", "src/dangling.c", "src/sub/blob.c",
                            "src/sub/latin1.c", "nope"}
    assert by_path["src/big.c"].skip == extract.TOO_LARGE
    assert by_path["src/sub/blob.c"].skip == extract.BINARY
    assert by_path["src/dangling.c"].skip == extract.UNREADABLE
    assert by_path["nope"].skip == extract.NOT_FOUND
    assert by_path["src/sub/latin1.c"].non_utf8 and by_path["src/sub/latin1.c"].skip is None
    assert by_path["src/a.c"].data == C_FILE and not by_path["src/a.c"].non_utf8


def test_include_exclude_and_explicit_files(tmp_path):
    root = _tree(tmp_path)
    only_h = [f.path for f in iter_c_files([root], include=["*.h"], root=root)]
    assert only_h == ["src/a.h"]
    no_sub = {f.path for f in iter_c_files([root / "src"], exclude=["src/sub/*", "*.h"], root=root)}
    assert "src/sub/latin1.c" not in no_sub and "src/a.h" not in no_sub and "src/a.c" in no_sub
    # a file named directly is read whatever its extension; the same file twice is read once
    explicit = list(iter_c_files([root / "src" / "notes.txt", root / "src" / "a.c", root / "src"], root=root))
    paths = [f.path for f in explicit]
    assert paths[0] == "src/notes.txt" and paths.count("src/a.c") == 1


def test_paths_outside_root_stay_absolute(tmp_path):
    root = _tree(tmp_path)
    files = list(iter_c_files([root / "src" / "a.c"], root=tmp_path / "elsewhere"))
    assert files[0].path == (root / "src" / "a.c").as_posix()


@pytest.mark.skipif(not Path("/work/kernel/linux-source-6.1/kernel/sys.c").is_file(), reason="no kernel source")
def test_linux_kernel_file():
    fns = extract_functions(Path("/work/kernel/linux-source-6.1/kernel/sys.c").read_bytes(), "kernel/sys.c")
    names = {f.name for f in fns}
    assert {"setpriority", "getpriority", "__sys_setregid"} <= names and len(fns) > 80
