"""Issue 27, scan / --diff / bundle / output items: each test failed before its fix.

Everything happens in temporary folders: special files are FIFOs made here with ``os.mkfifo``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from filelock import FileLock
from scan_fixture import make_bundle

import streamguard
from streamguard import argtypes, atomic
from streamguard.cli import build_parser, main
from streamguard.data.extract import OUTSIDE, SPECIAL, iter_c_files
from streamguard.errors import UserError
from streamguard.provenance import sha256_file
from streamguard.scan.bundle import open_bundle

GOOD_C = "int add(int a, int b)\n{\n\treturn a + b;\n}\n"
HANG_GUARD_S = 120  # only stops a hung test: a FIFO read that never returns


@pytest.fixture(scope="module")
def model(processed_small, tmp_path_factory):
    return make_bundle(processed_small, tmp_path_factory.mktemp("scan2model"))


def _src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.c").write_text(GOOD_C)
    return src


def _scan(bundle: Path, *args: str) -> int:
    return main(["scan", *args, "--model", str(bundle), "--fail-on", "none"])


def _error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# 1. --out: special files are written in place, never replaced; '-' is stdout.

def _read_fifo(path: Path, got: list[bytes]) -> threading.Thread:
    def reader() -> None:
        with open(path, "rb") as fh:
            got.append(fh.read())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    return t


def test_out_to_a_fifo_streams_into_it_and_leaves_it_a_fifo(model, tmp_path):
    _, bundle = model
    src = _src(tmp_path)
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    assert _scan(bundle, str(src), "--format", "json", "--out", str(fifo)) == 0
    reader.join(HANG_GUARD_S)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert got and json.loads(got[0])["summary"]["functions_scored"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_atomic_writes_stream_into_a_fifo_for_every_command(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    atomic.write_text(fifo, "row\n")  # predict's --out and every stage write through atomic_open
    reader.join(HANG_GUARD_S)
    assert got == [b"row\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_out_dash_is_standard_output(model, tmp_path, capsys, monkeypatch):
    _, bundle = model
    src = _src(tmp_path)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert _scan(bundle, str(src), "--format", "json", "--out", "-") == 0
    assert json.loads(capsys.readouterr().out)["summary"]["functions_scored"] == 1
    assert not (tmp_path / "-").exists()


# 2. A named pipe in the tree is skipped with its reason (it used to hang scan and corpus forever).

def test_a_fifo_in_the_tree_is_skipped_not_read(tmp_path):
    src = _src(tmp_path)
    os.mkfifo(src / "p.c")
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(iter_c_files([src], root=src)), daemon=True)
    worker.start()
    worker.join(HANG_GUARD_S)
    assert not worker.is_alive(), "reading the tree hung on the FIFO"
    by_path = {f.path: f for f in out}
    assert by_path["p.c"].skip == SPECIAL and by_path["p.c"].detail == "named pipe"
    assert by_path["a.c"].data is not None


def test_corpus_skips_a_fifo_and_an_outside_link_with_their_reasons(tmp_path):
    from streamguard.data.corpus import build_corpus
    src = _src(tmp_path)
    os.mkfifo(src / "p.c")
    (tmp_path / "secret.c").write_text(GOOD_C.replace("add", "secret"))
    (src / "leak.c").symlink_to(tmp_path / "secret.c")
    done: list = []
    worker = threading.Thread(target=lambda: done.append(build_corpus(src, tmp_path / "corpus", None, min_tokens=1)),
                              daemon=True)
    worker.start()
    worker.join(HANG_GUARD_S)
    assert done, "building the corpus hung on the FIFO"
    text = "\n".join(p.read_text() for p in (tmp_path / "corpus").rglob("*") if p.is_file())
    assert SPECIAL in text and OUTSIDE in text and "secret" not in text.replace("secret.c", "")


# 12. File links out of the scanned tree are skipped unless --follow-symlinks.

def test_file_links_out_of_the_tree_are_skipped_unless_asked(model, tmp_path):
    _, bundle = model
    src = _src(tmp_path)
    secret = tmp_path / "outside" / "secret.c"
    secret.parent.mkdir()
    secret.write_text("int secret_key(void)\n{\n\treturn 42;\n}\n")
    (src / "leak.c").symlink_to(secret)
    (src / "inside.c").symlink_to(src / "a.c")  # a link inside the tree: the same file, read once
    files = {f.path: f for f in iter_c_files([src], root=src)}
    assert files["leak.c"].skip == OUTSIDE and files["leak.c"].data is None
    report = tmp_path / "r.json"
    assert _scan(bundle, str(src), "--root", str(src), "--format", "json", "--out", str(report)) == 0
    assert "secret_key" not in report.read_text()
    assert _scan(bundle, str(src), "--root", str(src), "--format", "json", "--out", str(report),
                 "--follow-symlinks") == 0
    assert "secret_key" in report.read_text()


# 3, 4. --diff: quoted names, the user's diff settings, the scanned path's repository.

def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def _repo(tmp_path: Path, names: list[str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in names:
        (repo / name).write_text(GOOD_C)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init")
    for name in names:
        (repo / name).write_text(GOOD_C.replace("a + b", "a - b"))
    return repo


def _diff_paths(bundle: Path, repo: Path, tmp_path: Path, *extra: str) -> set[str]:
    out = tmp_path / "d.json"
    assert _scan(bundle, str(repo), "--diff", "HEAD", "--root", str(repo), "--format", "json", "--out", str(out),
                 *extra) == 0
    return {f["path"] for f in json.loads(out.read_text())["findings"]}


def test_diff_keeps_files_whose_names_git_quotes(model, tmp_path, monkeypatch):
    _, bundle = model
    names = ["plain.c", "caf\u00e9.c", 'q"uote.c', "back\\slash.c", "tab\there.c"]
    repo = _repo(tmp_path, names)
    monkeypatch.chdir(repo)
    assert _diff_paths(bundle, repo, tmp_path) == set(names)


def test_diff_ignores_the_users_prefix_settings_and_runs_in_the_scanned_repo(model, tmp_path, monkeypatch,
                                                                            capsys):
    _, bundle = model
    repo = _repo(tmp_path, ["a.c"])
    _git(repo, "config", "diff.mnemonicPrefix", "true")
    _git(repo, "config", "diff.noprefix", "true")
    elsewhere = tmp_path / "elsewhere"  # not a repository: git must run in the scanned path's
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _diff_paths(bundle, repo, tmp_path) == {"a.c"}
    capsys.readouterr()
    assert _scan(bundle, str(repo), "--diff", "no-such-rev") == 2
    assert "no-such-rev" in _error(capsys)


# 5. Every numeric option is range-checked at parse time.

def _walk(parser: argparse.ArgumentParser, path: str):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}")


def test_every_numeric_option_has_a_range_checking_type():
    loose = []
    for path, parser in _walk(build_parser(), "streamguard"):
        for action in parser._actions:
            numeric = action.type in (int, float) or isinstance(action.default, (int, float)) \
                and not isinstance(action.default, bool) and action.nargs != 0
            if numeric and not getattr(action.type, "range_checked", False):
                loose.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not loose, "numeric options without a range check:\n" + "\n".join(loose)


@pytest.mark.parametrize("argv", [
    ["scan", ".", "--model", "m", "--fail-on", v] for v in ("90", "2", "inf", "nan", "-1", "x")] + [
    ["scan", ".", "--model", "m", "--max-file-size", "-1"],
    ["scan", ".", "--model", "m", "--top", "0"],
    ["denoise", "r", "--out", "o", "--hard-below", "1.5"],
    ["compare", "--out", "o", "--bootstrap", "0"],
    ["compare", "--out", "o", "--bootstrap", "-5"],
    ["compare", "--out", "o", "--names", "onlyone"],
])
def test_out_of_range_numbers_are_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_fail_on_in_range_and_none_still_parse():
    args = build_parser().parse_args(["scan", "--model", "m", "--fail-on", "0.5"])
    assert args.fail_on == 0.5
    assert build_parser().parse_args(["scan", "--model", "m", "--fail-on", "None"]).fail_on == argtypes.NEVER


# 6, 13, 14. Bundles: nothing read from one chooses a path, breaks the loader, or passes off a broken model.

def _resign(root: Path) -> None:
    """Rewrite the manifest for the files as they are now: a tampered bundle that still verifies."""
    files = {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    (root / "manifest.json").write_text(json.dumps({"files": files}))


def _copy(bundle: Path, tmp_path: Path, name: str = "b") -> Path:
    copy = tmp_path / name
    shutil.copytree(bundle, copy)
    return copy


def _edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def _as_kind(copy: Path, kind: str) -> None:
    """Turn a copied lexical bundle into one of ``kind`` by its bundle.json and exp_config.json (the loader
    must judge the files, whatever they claim)."""
    _edit_json(copy / "bundle.json", lambda o: o.update(kind=kind))
    _edit_json(copy / "model" / "exp_config.json", lambda o: o.update(model=kind))


def _as_fusion(copy: Path, meta: dict) -> None:
    base = copy / "model" / "base" / "lexical"
    base.mkdir(parents=True)
    for p in list((copy / "model").iterdir()):
        if p.name != "base":
            shutil.move(str(p), str(base / p.name))
    shutil.copy(base / "exp_config.json", copy / "model" / "exp_config.json")
    shutil.copy(base / "threshold.json", copy / "model" / "threshold.json")
    _as_kind(copy, "fusion")
    (copy / "model" / "fusion.json").write_text(json.dumps(meta))


def test_a_bundle_cannot_choose_a_path_on_this_machine(model, tmp_path):
    _, bundle = model
    target = tmp_path / "chosen-by-the-bundle"
    copy = _copy(bundle, tmp_path)
    _as_fusion(copy, {"models": ["lexical"], "base_runs": {"lexical": "base/lexical"}, "method": "weighted",
                      "weights": [1.0], "bias": 0.0, "threshold": 0.5})
    _edit_json(copy / "model" / "base" / "lexical" / "exp_config.json",
               lambda o: o["hyperparameters"].update(cache_dir=str(target)))
    _resign(copy)
    with pytest.raises(UserError, match="cache_dir"):
        open_bundle(copy)
    assert not target.exists()


def _tamper_cases() -> dict[str, object]:
    def bundle_json(obj):
        return lambda c: (c / "bundle.json").write_text(obj if isinstance(obj, str) else json.dumps(obj))

    def info(**kw):
        def change(c):
            _edit_json(c / "bundle.json", lambda o: (o.update(kw), [o.pop(k) for k, v in kw.items() if v is ...]))
        return change

    def arrays(c, change):  # rewrite the lexical arrays and the sha256 its own json records for them
        p = c / "model" / "lexical_model.safetensors"
        p.write_bytes(change(p.read_bytes()))
        _edit_json(c / "model" / "lexical_model.json", lambda o: o.update(arrays_sha256=sha256_file(p)))

    def header(c):  # a safetensors header length far beyond the file
        arrays(c, lambda raw: struct.pack("<Q", 1 << 40) + raw[8:])

    def shape(c):  # a tensor whose shape does not match its bytes
        def change(raw: bytes) -> bytes:
            n = struct.unpack("<Q", raw[:8])[0]
            head = json.loads(raw[8:8 + n])
            head["coef"]["shape"] = [1, 10 ** 6]
            new = json.dumps(head).encode()
            return struct.pack("<Q", len(new)) + new + raw[8 + n:]
        arrays(c, change)

    def transformer(config, extra=None):
        def change(c):
            _as_kind(c, "transformer")
            hf = c / "model" / "hf_model"
            hf.mkdir()
            (hf / "config.json").write_text(json.dumps(config))
            (hf / "model.safetensors").write_bytes((c / "model" / "lexical_model.safetensors").read_bytes())
            (hf / "streamguard_head.json").write_text(json.dumps({"head_hidden": 8, "dropout": 0.0,
                                                                  "pooling": "attention", "max_length": 64}))
            if extra:
                (hf / extra).write_bytes(b"\x80\x04N.")
        return change

    roberta = {"model_type": "roberta", "vocab_size": 2000, "hidden_size": 8, "num_hidden_layers": 1,
               "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 66}
    return {
        "kind missing": info(kind=...),
        "kind a list": info(kind=["lexical"]),
        "threshold a string": info(threshold="high"),
        "threshold null": info(threshold=None),
        "bundle.json a list": bundle_json([1, 2]),
        "bundle.json not JSON": bundle_json("{nope"),
        "oversized safetensors header": header,
        "inconsistent safetensors shape": shape,
        "unknown model_type": transformer({**roberta, "model_type": "evil-net"}),
        "vocab_size 1e9": transformer({**roberta, "vocab_size": 10 ** 9}),
        "pytorch_model.bin": transformer(roberta, "pytorch_model.bin"),
        "fusion of fusion": lambda c: _as_fusion(c, {"models": ["fusion"], "base_runs": {"lexical": "base/lexical"},
                                                     "method": "weighted", "weights": [1.0], "bias": 0.0,
                                                     "threshold": 0.5}),
        "1 weight for 3 models": lambda c: _as_fusion(c, {
            "models": ["lexical", "gnn", "transformer"], "method": "weighted", "weights": [1.0], "bias": 0.0,
            "threshold": 0.5, "base_runs": {k: "base/lexical" for k in ("lexical", "gnn", "transformer")}}),
    }


@pytest.mark.parametrize("case", list(_tamper_cases()))
def test_re_signed_malformed_bundles_are_one_line_exit_2(model, tmp_path, capsys, case):
    _, bundle = model
    copy = _copy(bundle, tmp_path)
    _tamper_cases()[case](copy)
    _resign(copy)
    src = _src(tmp_path)
    capsys.readouterr()
    assert _scan(copy, str(src), "--format", "json", "--out",
                 str(tmp_path / "r.json")) == 2
    _error(capsys)


@pytest.mark.parametrize("case", ["no bytes", "deep"])
def test_malformed_manifests_are_one_line(model, tmp_path, case):
    _, bundle = model
    copy = _copy(bundle, tmp_path)
    if case == "no bytes":
        _edit_json(copy / "manifest.json", lambda o: next(iter(o["files"].values())).pop("bytes"))
    else:
        (copy / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="manifest"):
        open_bundle(copy)


def test_a_model_scoring_nan_is_broken_exit_2(model, tmp_path, capsys):
    from safetensors.numpy import load_file, save_file
    _, bundle = model
    copy = _copy(bundle, tmp_path)
    weights = copy / "model" / "lexical_model.safetensors"
    arrays = load_file(str(weights))
    arrays["intercept"] = arrays["intercept"] * float("nan")  # every logit NaN: what a diverged model gives
    save_file(arrays, str(weights))
    _edit_json(copy / "model" / "lexical_model.json", lambda o: o.update(arrays_sha256=sha256_file(weights)))
    _resign(copy)
    src = _src(tmp_path)
    capsys.readouterr()
    assert _scan(copy, str(src), "--format", "json", "--out", str(tmp_path / "r.json")) == 2
    assert "non-finite" in _error(capsys)


def test_score_with_evidence_of_an_unscorable_function_is_an_error_result(model):
    _, bundle = model
    got = streamguard.load(bundle).score("", evidence=3)
    assert got.verdict == "error" and got.evidence == ()


# 13. Output paths and other one-liners.

@pytest.mark.parametrize("fmt", ["table", "json"])
def test_out_a_missing_folder_or_a_directory_is_one_line(model, tmp_path, capsys, fmt):
    _, bundle = model
    src = _src(tmp_path)
    for out in (tmp_path / "missing" / "r.txt", tmp_path):
        capsys.readouterr()
        assert _scan(bundle, str(src), "--format", fmt, "--out", str(out)) == 2
        _error(capsys)


def test_table_out_is_written_atomically(model, tmp_path, monkeypatch):
    _, bundle = model
    src = _src(tmp_path)
    out = tmp_path / "r.txt"
    out.write_text("previous report\n")
    calls = []
    real = atomic.atomic_open

    def spy(path, *a, **kw):
        calls.append(Path(path))
        return real(path, *a, **kw)
    monkeypatch.setattr(atomic, "atomic_open", spy)
    monkeypatch.setattr("streamguard.scan.run.atomic_open", spy, raising=False)
    assert _scan(bundle, str(src), "--out", str(out)) == 0
    assert calls == [out] and "add" in out.read_text()


def test_data_import_out_an_existing_file_is_one_line(tmp_path, capsys):
    (tmp_path / "a.csv").write_text('func,target\n"int f(void) { return 0; }",1\n')
    existing = tmp_path / "existing"
    existing.write_text("keep me\n")
    capsys.readouterr()
    assert main(["data", "import", "csv", "--source", str(tmp_path / "a.csv"), "--out", str(existing)]) == 2
    _error(capsys)
    assert existing.read_text() == "keep me\n"


def test_models_register_a_bad_name_and_load_into_a_file_are_one_line(model, tmp_path, capsys):
    run, _ = model
    capsys.readouterr()
    assert main(["models", "register", str(run), "bad name'/x"]) == 2
    assert "name" in _error(capsys)
    target = tmp_path / "afile"
    target.write_text("x")
    assert main(["models", "load", "whatever", "--out", str(target)]) == 2
    assert "not a directory" in _error(capsys)


# 19 (export). Two exports into one --out: the second is refused; temp folders are never shared.

def test_a_second_export_into_the_same_out_is_refused(model, tmp_path, capsys):
    run, _ = model
    out = tmp_path / "bundle"
    other_writer_tmp = tmp_path / "bundle.tmp-export"  # the temp folder of a concurrent export (old layout)
    other_writer_tmp.mkdir()
    (other_writer_tmp / "work").write_text("in progress")
    holder = FileLock(str(tmp_path / ".bundle.export.lock"), timeout=0)
    with holder:
        capsys.readouterr()
        assert main(["export", str(run), "--out", str(out)]) == 2
        assert "in use" in _error(capsys)
    assert not out.exists()
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert (other_writer_tmp / "work").read_text() == "in progress"
    assert not [p for p in tmp_path.iterdir() if "tmp-export-" in p.name]
