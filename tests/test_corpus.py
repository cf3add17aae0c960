"""The corpus step on real kernel functions: extraction, deduplication, Devign overlap dropped, accounting."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.data.corpus import build_corpus, normalise, read_corpus, text_key
from streamguard.errors import UserError

KERNEL = Path(__file__).parent / "fixtures" / "kernel_c"


def test_normalise_drops_comments_and_whitespace_but_keeps_literals() -> None:
    code = 'int f(void)\n\n{\n\t/* x */ return g("/* not */ // a comment", \'/\'); // y\n}\n'
    assert normalise(code) == 'int f(void) { return g("/* not */ // a comment", \'/\'); }'
    assert text_key(code) == text_key(code.replace("\n", "\n\n").replace("\t", "    "))


def _devign_with(tmp_path: Path, raw_small: Path, func: str) -> Path:
    """raw_small's splits plus one kernel function, reformatted the way Devign stores code, in test."""
    devign = tmp_path / "devign"
    shutil.copytree(raw_small, devign)
    row = {"project": "qemu", "commit_id": "x", "target": 0, "idx": 99999,
           "func": "/* copied */\n" + func.replace("\n", "\n\n").replace("\t", "    ")}
    with open(devign / "test.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    return devign


def test_duplicates_and_devign_overlap_are_dropped_and_accounted(tmp_path: Path, raw_small: Path) -> None:
    from streamguard.data.extract import extract_functions
    source = tmp_path / "src"
    shutil.copytree(KERNEL, source)
    shutil.copy(source / "lib" / "sort.c", source / "sort_copy.c")  # every function of sort.c twice
    sort_fns = extract_functions((KERNEL / "lib" / "sort.c").read_bytes(), "lib/sort.c")
    victim = next(f for f in extract_functions((KERNEL / "lib" / "kstrtox.c").read_bytes()) if f.name == "kstrtoint")
    manifest = build_corpus(source, tmp_path / "corpus", _devign_with(tmp_path, raw_small, victim.code))
    c = manifest["counts"]
    assert c["files"] == 15 and c["duplicates"] == len(sort_fns) and c["devign_overlap_dropped"] == 1
    assert c["functions"] == c["kept"] + c["duplicates"] + c["devign_overlap_dropped"] + c["too_short"]
    assert c["kept"] >= 250 and c["tokens"] > 10 * c["kept"]
    rejects = [json.loads(x) for x in (tmp_path / "corpus" / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == c["functions"] - c["kept"]
    assert [r["name"] for r in rejects if r["reason"] == "devign_overlap"] == ["kstrtoint"]
    codes, read_manifest = read_corpus(tmp_path / "corpus")
    assert len(codes) == c["kept"] and read_manifest == manifest
    assert len({text_key(x) for x in codes}) == len(codes)
    assert not any("kstrtoint(const char *s" in x for x in codes)
    assert manifest["licence"]["file"] == "COPYING" and "GPL-2.0-only" in manifest["licence"]["spdx_identifiers"]


def test_cli_corpus_subdirs_and_errors(tmp_path: Path, raw_small: Path, capsys) -> None:
    out = tmp_path / "c"
    assert main(["corpus", "--source", str(KERNEL), "--out", str(out), "--devign", str(raw_small),
                 "--subdirs", "lib", "--exclude", "bitmap.c"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["files"] == 13 and manifest["selection"]["subdirs"] == ["lib"]
    assert main(["corpus", "--source", str(KERNEL), "--out", str(out), "--subdirs", "nope", "--no-devign"]) == 2
    assert "no such subfolder" in capsys.readouterr().err
    with pytest.raises(UserError, match="Devign split not found"):
        build_corpus(KERNEL, out, tmp_path / "missing")


def test_devign_train_corpus_keeps_train_text_only_and_drops_valid_test_copies(tmp_path: Path,
                                                                               raw_small: Path) -> None:
    devign = tmp_path / "devign"
    shutil.copytree(raw_small, devign)
    train = [json.loads(line) for line in (devign / "train.jsonl").read_text().splitlines()]
    test_func = json.loads((devign / "test.jsonl").read_text().splitlines()[0])["func"]
    extra = [{**train[0], "func": train[0]["func"].replace("\n", "\n\n")},  # a reformatted train duplicate
             {**train[1], "func": "/* leaked */ " + test_func}]              # a test function copied into train
    with open(devign / "train.jsonl", "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in extra)
    out = tmp_path / "corpus"
    assert main(["corpus", "--devign-train", "--devign", str(devign), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["counts"]
    assert c["functions"] == len(train) + 2 and c["duplicates"] >= 1 and c["devign_overlap_dropped"] >= 1
    assert c["kept"] + len((out / "rejects.jsonl").read_text().splitlines()) == c["functions"]
    codes, _ = read_corpus(out)
    assert text_key(test_func) not in {text_key(code) for code in codes}
    assert all(set(json.loads(line)) == {"id", "path", "name", "lines", "code"}
               for line in (out / "functions.jsonl").read_text().splitlines())  # text, never a label
