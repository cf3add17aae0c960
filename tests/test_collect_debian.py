"""``data collect debian`` on a tiny mirror served from 127.0.0.1 (tests/debian_fixture.py): the right pairs and
context rows, hostile archive members refused, a SIGKILLed run resumed to the same bytes, bad input is one line."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from debian_fixture import SUITE, build_mirror

from streamguard.cli import main
from streamguard.data.debian import diff as debian_diff
from streamguard.data.debian.assemble import TEST_CODE, held_out_project
from streamguard.data.debian.index import compare_versions, paragraphs
from streamguard.data.debian.patches import parse_changelog, patch_cves, upstream_name

ROOT = Path(__file__).resolve().parents[1]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = build_mirror(tmp_path_factory.mktemp("mirror"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _args(mirror: str, out: Path, cache: Path, packages: str = "demo,evil") -> list[str]:
    return ["data", "collect", "debian", "--out", str(out), "--suites", SUITE, "--packages", packages,
            "--cache", str(cache), "--mirror", mirror]


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def collected(mirror, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    assert main(_args(mirror, tmp / "out", tmp / "cache")) == 0
    return tmp


def test_pairs_come_from_cve_patches_only(collected):
    pool = _rows(collected / "out" / "pool.jsonl")
    pairs = {r["function"]: r for r in pool if r["kind"] == "before" and r["package"] == "demo"}
    assert set(pairs) == {"hex2bin", "bin2hex", "print_hex_dump"}  # not the doc fix, not the failed patch
    assert pairs["hex2bin"]["cve"] == "CVE-2024-1111" and pairs["hex2bin"]["cve_found_in"] == ["name"]
    assert pairs["bin2hex"]["cve"] == "CVE-2024-2222" and pairs["bin2hex"]["cve_found_in"] == ["header"]
    assert pairs["print_hex_dump"]["cve"] == "CVE-2025-4444"
    assert pairs["print_hex_dump"]["cve_found_in"] == ["changelog"]
    assert pairs["hex2bin"]["fix_date"] == "2024-03-05" and pairs["print_hex_dump"]["fix_date"] == "2025-02-10"
    after = {r["pair_id"]: r for r in pool if r["kind"] == "after"}
    for fn, before in pairs.items():
        other = after[before["pair_id"]]
        assert before["target"] == 1 and other["target"] == 0 and other["function"] == fn
        assert before["func"] != other["func"] and before["licence"] == "GPL-2.0"
        assert before["changed_lines"] and all(before["start_line"] <= n <= before["end_line"]
                                               for n in before["changed_lines"])
    assert "if (!dst || !src)" in after[pairs["hex2bin"]["pair_id"]]["func"]
    assert "if (!dst || !src)" not in pairs["hex2bin"]["func"]
    # the header-named fix applied after the doc fix (its context holds the doc fix's line)
    assert "while (count-- && dst)" in after[pairs["bin2hex"]["pair_id"]]["func"]
    held = "package" if held_out_project("demo") else "time"
    assert pairs["print_hex_dump"]["holdout"] == held
    assert pairs["hex2bin"]["holdout"] == ("package" if held == "package" else "")


def test_context_rows_are_the_other_functions_once(collected):
    pool = _rows(collected / "out" / "pool.jsonl")
    context = [r for r in pool if r["kind"] == "context" and r["package"] == "demo"]
    names = [r["function"] for r in context]
    assert names == ["hex_dump_to_buffer"]  # once, though three applied patches touched its file
    assert all(r["target"] == 0 and not r["pair_id"] for r in context)
    # hex_to_bin is context of demo's patches but its text is evil's vulnerable function: never labelled 0
    paired = {r["func"] for r in pool if r["kind"] != "context"}
    assert not paired & {r["func"] for r in context}
    assert len({r["idx"] for r in pool}) == len(pool)


def test_manifest_counts_and_rejects(collected):
    out = collected / "out"
    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    assert c["cve_patches"] == {"found": 6, "applied": 4, "failed": 2, "skipped": 0, "not_cve": 1}
    assert c["rows_extracted"] == c["rows_written"] + c["rows_dropped"]
    assert c["pairs"] == 4 and c["packages"]["scanned"] == 2
    rejects = _rows(out / "rejects.jsonl")
    failed = {r["patch"]: r["reason"] for r in rejects if r["kind"] == "CVE patch failed"}
    assert "does not apply" in failed["CVE-2024-3333.patch"]
    assert "does not exist" in failed["CVE-2024-9002.patch"]  # the symlink was refused, never followed


def test_hostile_members_are_refused(collected):
    refused = {r["member"]: r["reason"] for r in _rows(collected / "out" / "rejects.jsonl")
               if r["kind"] == "archive member refused"}
    assert set(refused) == {"../escape.c", "/abs.c", "evil-1.0/src/link.c", "evil-1.0/src/up.c"}
    assert "AbsoluteLinkError" in refused["evil-1.0/src/link.c"]
    assert not (collected / "escape.c").exists() and not (collected.parent / "escape.c").exists()
    evil = [r for r in _rows(collected / "out" / "pool.jsonl") if r["package"] == "evil"]
    assert {r["function"] for r in evil if r["kind"] == "before"} == {"hex_to_bin"}  # ok.c still gave its pair


def test_rerun_is_idempotent_and_cached(mirror, collected):
    out = collected / "out"
    names = ("pool.jsonl", "rejects.jsonl", "manifest.json")
    before = {n: (out / n).read_bytes() for n in names}
    assert main(_args(mirror, out, collected / "cache")) == 0
    assert before == {n: (out / n).read_bytes() for n in names}
    assert json.loads((out / "run.json").read_text())["processed_now"] == 0


def test_sigkill_mid_run_resumes_to_identical_output(mirror, collected, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SG_KILL_AT": "demo_1.0-2.json.gz:1"}
    out = tmp_path / "out"
    args = _args(mirror, out, collected / "cache")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_at.py"), *args], env=env, capture_output=True)
    assert proc.returncode == -9 and not (out / "pool.jsonl").exists()
    assert [p.name for p in (out / "work" / SUITE).iterdir()] == ["demo_1.0-2.json.gz"]
    assert main(args) == 0
    for name in ("pool.jsonl", "rejects.jsonl", "manifest.json"):
        assert (out / name).read_bytes() == (collected / "out" / name).read_bytes()


def test_unknown_package_is_one_line_exit_2(mirror, tmp_path, capsys):
    assert main(_args(mirror, tmp_path / "out", tmp_path / "cache", packages="demo,nosuch")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuch" in err[0]


def test_corrupt_cached_file_is_fetched_again(mirror, tmp_path):
    cache = tmp_path / "cache"
    assert main(_args(mirror, tmp_path / "a", cache, packages="demo")) == 0
    orig = cache / "files" / "demo_1.0.orig.tar.gz"
    orig.write_bytes(b"not the file the index names")
    assert main(_args(mirror, tmp_path / "b", cache, packages="demo")) == 0
    assert (tmp_path / "a" / "pool.jsonl").read_bytes() == (tmp_path / "b" / "pool.jsonl").read_bytes()


def test_diff_applies_with_offset_and_refuses_changed_context():
    old = [f"line {i}\n" for i in range(1, 21)]
    diff = debian_diff.parse("--- a/f.c\n+++ b/f.c\n@@ -5,3 +5,4 @@\n line 8\n-line 9\n+line nine\n+extra\n"
                             " line 10\n")[0]
    new, change = debian_diff.apply(old, diff)  # the hunk says line 5; it is found 3 lines further down
    assert new[7:11] == ["line 8\n", "line nine\n", "extra\n", "line 10\n"]
    assert change.removed == [9] and change.added == [9, 10]
    with pytest.raises(debian_diff.PatchError, match="does not apply"):
        debian_diff.apply([x.upper() for x in old], diff)
    # a form feed (ImageMagick's sources have them) is part of a line, not a line break
    ff = debian_diff.parse("--- a/m.c\n+++ b/m.c\n@@ -1,2 +1,3 @@\n }\n+\x0c\n \x0c/*\n")[0]
    assert debian_diff.apply(["}\n", "\x0c/*\n"], ff)[0] == ["}\n", "\x0c\n", "\x0c/*\n"]


def test_test_code_is_recognised():
    assert [bool(TEST_CODE.search(p)) for p in ("expat/tests/runtests.c", "src/test-url.c", "lib/url_test.c",
                                                 "fuzz/fuzz_x509.c", "lib/contest.c", "src/attest.c")] == \
        [True, True, True, True, False, False]


def test_small_parsers():
    # a paragraph opening with an indented line (free-form copyright files) is read, not a crash
    assert paragraphs("  see http://x.test\n  more\n\nFiles: *\nLicense: MIT\n")[-1]["License"] == "MIT"
    assert compare_versions("1.0-1+deb11u2", "1.0-1+deb11u10") < 0
    assert compare_versions("1:0.9", "2.0") > 0 and compare_versions("1.0~rc1", "1.0") < 0
    names = ("libpng1.6", "glib2.0", "libxml2", "postgresql-13", "qemu", "freerdp3")
    assert [upstream_name(p) for p in names] == ["libpng", "glib", "libxml2", "postgresql", "qemu", "freerdp"]
    changelog = parse_changelog("p (1-2) s; urgency=high\n\n  * Fix buffer overflow (CVE-2023-12345)\n"
                                "    in d/p/fix-oob.patch\n  * Other CVE-2023-99999 (other.patch)\n\n"
                                " -- A <a@b.c>  Mon, 10 Feb 2025 10:00:00 +0000\n")
    assert changelog[0].date == "2025-02-10"
    assert patch_cves("fix-oob.patch", "no header\n", changelog) == (["CVE-2023-12345"], ["changelog"])
    assert patch_cves("x/CVE_2021_3156-1.patch", "CVE: CVE-2021-0001\n---\n", []) == \
        (["CVE-2021-0001", "CVE-2021-3156"], ["name", "header"])


def test_merge_keeps_held_out_groups_out_of_train(collected, tmp_path):
    base = ROOT / "tests" / "fixtures" / "collected" / "devign_base"
    out = tmp_path / "m"
    assert main(["data", "merge", "--base", str(base), "--add", str(collected / "out"), "--out", str(out)]) == 0
    pool = {r["idx"]: r for r in _rows(collected / "out" / "pool.jsonl")}
    held = [r for r in pool.values() if r["holdout"]]
    assert held  # the 2025 fix at least (the time split)
    train = {r["idx"] for r in _rows(out / "train.jsonl")}
    heldout = {r["idx"] for r in _rows(out / "heldout" / "test.jsonl")}
    assert not {r["idx"] for r in held} & train
    assert {r["idx"] for r in held} <= heldout | {d["uid"] for d in _rows(out / "dropped.jsonl")}
    leakage = json.loads((out / "manifest.json").read_text())["extra"]["leakage_check"]
    assert leakage["train_rows_equal_or_near_evaluation"] == 0
