"""The transfer benchmark (docs/transfer.md): prepare the collected data, run configs/pipeline-transfer.yaml, write
one table of every model on every unseen set (benchmarks/results/transfer.{md,json} by default).

    python benchmarks/transfer.py [--set key=value ...]        # make transfer
    python benchmarks/transfer.py --set quick=true work=/tmp/t  # the bundled sample and small slices, seconds

Keys: work (build/transfer), out (benchmarks/results/transfer; quick: {work}/transfer), kinds (lexical; or any of
lexical,gnn,fusion: the fusion of fusion_models, lexical,analysers by default), devign (../shared/data/devign;
quick: data/sample), bigvul_source (the shared Big-Vul subset), debian_gz (data/collected/debian/pool.jsonl.gz),
context_train (false: Debian context rows are for the ranking metrics; they are unlabelled by a fix, so training
leaves them out), quick_patches (quick: patches per Debian holdout group, 4), quick_pairs (quick: Big-Vul pairs,
40), cross_project (true; false skips the Devign cross-project runs and rows, and, with vocab_from=DIR,
preprocess-devign too); any other key is a pipeline param (e.g. lexical=FILE, gnn=FILE, taint_graph=true, seed).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "pipeline-transfer.yaml"
KIND_STEPS = ("{k}", "{k}-heldout", "{k}-xp-ffmpeg", "{k}-xp-qemu", "{k}-evaluate")
CROSS_PROJECT_STEPS = {"split-ffmpeg", "split-qemu", "{k}-xp-ffmpeg", "{k}-xp-qemu"}
DATA_STEPS = ("import-devign", "import-bigvul", "merge", "preprocess-devign", "preprocess-merged",
              "preprocess-heldout", "split-ffmpeg", "split-qemu")
DEFAULTS = {"work": "build/transfer", "kinds": "lexical", "devign": "../shared/data/devign",
            "bigvul_source": "../shared/data/collected/bigvul_subset/all.jsonl",
            "debian_gz": str(ROOT / "data/collected/debian/pool.jsonl.gz"), "context_train": "false",
            "quick": "false", "quick_patches": "4", "quick_pairs": "40", "train": "merged", "context_share": "1",
            "cross_project": "true"}
QUICK = {"devign": str(ROOT / "data/sample"), "lexical": str(ROOT / "configs/transfer/lexical-quick.yaml"),
         "gnn": str(ROOT / "configs/transfer/gnn-quick.yaml")}


def settings(pairs: list[str]) -> dict[str, str]:
    values = dict(DEFAULTS)
    given = dict(p.split("=", 1) for p in pairs if "=" in p)
    if given.get("quick", "false").lower() == "true":
        values.update(QUICK)
    values.update(given)
    values.setdefault("out", str(Path(values["work"]) / "transfer") if _true(values["quick"])
                      else str(ROOT / "benchmarks/results/transfer"))
    return values


def _true(value: str) -> bool:
    return str(value).lower() in ("true", "1", "yes")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    tmp.replace(path)


def debian_rows(gz: Path, context_train: bool, quick_patches: int | None,
                context_share: float = 1.0) -> list[dict[str, Any]]:
    """The Debian pool's rows the job uses: every pair; context rows of held-out patches (and of the others with
    ``context_train``), of the files drawn by ``context_share`` (a stable hash of patch and file: a file keeps all
    its context or none); with ``quick_patches``, only that many patches (commit + file) per holdout group."""
    rows = []
    with gzip.open(gz, "rt") as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "context" and ((not r.get("holdout") and not context_train)
                                           or _draw(r["commit_id"] + "/" + r["file"]) >= context_share):
                continue
            rows.append(r)
    if quick_patches is None:
        return rows
    chosen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in rows:
        key, group = (r["commit_id"], r["file"]), r.get("holdout") or ""
        if r["kind"] == "before" and key not in chosen[group] and len(chosen[group]) < quick_patches:
            chosen[group].append(key)
    keep = {k for keys in chosen.values() for k in keys}
    per_key: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for r in rows:
        key = (r["commit_id"], r["file"])
        if key in keep and (r["kind"] != "context" or per_key[key] < 6):
            per_key[key] += r["kind"] == "context"
            out.append(r)
    return out


def _draw(key: str) -> float:
    return int(hashlib.sha256(f"streamguard-transfer:{key}".encode()).hexdigest()[:8], 16) / 16**8


def _norm(code: str) -> str:
    return " ".join(code.split())


def baseline_heldout(values: dict[str, str], debian: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``train=devign``: the held-out raw rows without a merge: the Debian rows of held-out groups and every
    Big-Vul pair none of whose functions is in Devign's train split (whitespace-normalised text)."""
    seen = {_norm(json.loads(line)["func"]) for line in (Path(values["devign"]) / "train.jsonl").open()}
    bigvul = bigvul_rows(Path(values["bigvul_source"]), int(values["quick_pairs"]) if _true(values["quick"]) else None)
    leaked = {r.get("pair_id") for r in bigvul if _norm(r["func"]) in seen}
    bigvul = [{**r, "source": "bigvul"} for r in bigvul if r.get("pair_id") and r.get("pair_id") not in leaked]
    return [r for r in debian if r.get("holdout")] + bigvul


def bigvul_rows(path: Path, quick_pairs: int | None) -> list[dict[str, Any]]:
    """Big-Vul subset rows; with ``quick_pairs``, the rows of that many complete before/after pairs."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if quick_pairs is None:
        return rows
    count: dict[str, int] = defaultdict(int)
    for r in rows:
        count[r.get("pair_id") or ""] += 1
    pairs = [p for p in dict.fromkeys(r.get("pair_id") or "" for r in rows) if p and count[p] == 2][:quick_pairs]
    return [r for r in rows if (r.get("pair_id") or "") in set(pairs)]


def pipeline_params(values: dict[str, str]) -> dict[str, str]:
    params = {k: v for k, v in values.items() if k not in ("out",)}
    if values["train"] == "devign":
        params["heldout_raw"] = str(Path(values["work"]) / "heldout-devign")
    return params


def prepare(values: dict[str, str]) -> bool:
    """{work}/debian/pool.jsonl and {work}/bigvul.jsonl, written when the sources' contents or the settings they
    depend on changed (a stamp records them); True when written, and then the steps that read them run again
    (a finished step is otherwise skipped whatever its inputs)."""
    from streamguard.pipeline import forget
    from streamguard.provenance import sha256_file
    work, quick = Path(values["work"]), _true(values["quick"])
    for p in (Path(values["debian_gz"]), Path(values["bigvul_source"])):
        if not p.is_file():
            sys.exit(f"transfer: error: {p} not found (set debian_gz= / bigvul_source=)")
    stamp = {k: values[k] for k in ("context_train", "quick", "quick_patches", "quick_pairs", "train",
                                    "context_share")}
    stamp |= {f"{k}_sha256": sha256_file(Path(values[k])) for k in ("debian_gz", "bigvul_source")}
    stamp_path = work / "prepared.json"
    if stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return False
    debian = debian_rows(Path(values["debian_gz"]), _true(values["context_train"]),
                         int(values["quick_patches"]) if quick else None, float(values["context_share"]))
    if values["train"] == "devign":
        from streamguard.data.rawdir import RawDir
        with RawDir.writing(work / "heldout-devign") as raw:  # evaluation-only, as data merge writes OUT/heldout
            for split, rows in (("train", []), ("valid", []), ("test", baseline_heldout(values, debian))):
                raw.write_split(split, rows)
            raw.write_manifest("heldout", "transfer-baseline", audit={})
    _write_jsonl(work / "debian" / "pool.jsonl", debian)
    _write_jsonl(work / "bigvul.jsonl", bigvul_rows(Path(values["bigvul_source"]),
                                                    int(values["quick_pairs"]) if quick else None))
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    forget(CONFIG, pipeline_params(values), "import-bigvul")  # the merge reads them, and every model its output
    return True


def steps(kinds: list[str], values: dict[str, str]) -> list[str]:
    """The pipeline steps this run needs: no merge for the devign baseline; no cross-project splits and runs with
    cross_project=false, and no preprocess-devign when the vocabulary comes from another folder too."""
    skip = {"import-bigvul", "merge", "preprocess-merged"} if values["train"] == "devign" else set()
    if not _true(values["cross_project"]):
        skip |= CROSS_PROJECT_STEPS | ({"preprocess-devign"} if values.get("vocab_from") else set())
    return [*(s for s in DATA_STEPS if s not in skip),
            *(s.format(k=k) for k in kinds for s in KIND_STEPS if s not in skip)]


def export_default(values: dict[str, str], kind: str) -> Path:
    """Export {work}/runs/KIND as the package's default model, its card extended with this benchmark's figures
    (the manifest entry of the card is rewritten to match)."""
    from streamguard.api import export
    from streamguard.provenance import sha256_file
    from streamguard.resources import DEFAULT_MODEL
    res = json.loads(Path(values["out"]).with_suffix(".json").read_text())
    if DEFAULT_MODEL.exists():
        shutil.rmtree(DEFAULT_MODEL)
    export(Path(values["work"]) / "runs" / values["train"] / kind, DEFAULT_MODEL)
    (DEFAULT_MODEL.parent / f".{DEFAULT_MODEL.name}.export.lock").unlink(missing_ok=True)
    card = DEFAULT_MODEL / "MODEL_CARD.md"
    card.write_text(card.read_text().replace("# Model card: ", "# Model card (the default model): ", 1)
                    + card_section(res, kind))
    manifest = json.loads((DEFAULT_MODEL / "manifest.json").read_text())
    manifest["files"]["MODEL_CARD.md"] = {"sha256": sha256_file(card), "bytes": card.stat().st_size}
    (DEFAULT_MODEL / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return DEFAULT_MODEL


def card_section(res: dict[str, Any], kind: str) -> str:
    from streamguard.evaluate.transfer import markdown_table
    rows = [r for r in res["rows"] if r["model"] == kind]
    trained = ("Devign's train split alone (FFmpeg and QEMU functions; the baseline of the benchmark, "
               "`train=devign`)" if res.get("train") == "devign" else
               "Devign's train split + the Big-Vul subset + the Debian CVE fix pairs (data/collected/debian), merged "
               "(duplicates, near-duplicates and leakage removed), minus every held-out group")
    return ("\n## Where it was trained and how it transfers (benchmarks/results/transfer.md)\n\n"
            f"Trained on {trained}. The metrics section above is Devign's official test. The rows below add code it "
            "never trained on: Devign cross-project (a model of the same kind trained on one project only), the "
            "held-out Debian packages and fixes from 2025 on, and Big-Vul pairs. "
            f"Commit {res['git'].get('commit')}, {res['date']}.\n\n" + markdown_table(rows) + near_chance(rows))


def near_chance(rows: list[dict[str, Any]]) -> str:
    """The card's plain statement: on which unseen sets the model is indistinguishable from chance."""
    near = [r["set"] for r in rows if r["roc_auc_ci"][0] is not None and r["roc_auc_ci"][0] <= 0.5]
    pairs = [r["set"] for r in rows if r["pairs"].get("n_pairs") and abs(r["pairs"]["vulnerable_higher"] - 0.5) < 0.05]
    return ("\nNear chance (ROC-AUC 95% CI reaching 0.5): " + (", ".join(near) or "none") + ". Pairs where the "
            "vulnerable side scores higher in under 55% of pairs (the model barely tells a function from its own "
            "fix): " + (", ".join(pairs) or "none") + ". Use its findings to rank code for review, with many false "
            "positives and misses; never as proof of a bug (docs/transfer.md).\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="settings; several --set flags add up (a later key wins)")
    parser.add_argument("--export-default", default=None, metavar="KIND",
                        help="after a run: export {work}/runs/KIND as the package's default model")
    args = parser.parse_args(argv)
    values = settings(args.set)
    if args.export_default:
        print(f"transfer: default model -> {export_default(values, args.export_default)}")
        return 0
    kinds = [k for k in values["kinds"].split(",") if k]
    if not kinds or set(kinds) - {"lexical", "gnn", "fusion"}:
        sys.exit(f"transfer: error: kinds must be among lexical, gnn and fusion, got {values['kinds']!r}")
    if values["train"] not in ("merged", "devign"):
        sys.exit(f"transfer: error: train must be merged or devign, got {values['train']!r}")
    from streamguard.cli import main as sg_main
    from streamguard.evaluate.transfer import summarize
    from streamguard.pipeline import run_pipeline
    started = time.time()
    prepare(values)
    params = pipeline_params(values)
    timings = run_pipeline(CONFIG, params, steps(kinds, values), main=sg_main)
    command = "python benchmarks/transfer.py" + "".join(f" --set {s}" for s in args.set)
    work = Path(values["work"])  # the job's runs/preds/data params, where --set moved them (a lever's variant)
    res = summarize(work, kinds, values["train"], Path(values.get("preds") or work / "predictions"),
                    Path(values["out"]), command=command, timings=timings, seconds=time.time() - started,
                    runs=Path(values["runs"]) if values.get("runs") else None,
                    data=Path(values["data"]) if values.get("data") else None,
                    cross_project=_true(values["cross_project"]))
    print(f"transfer: {len(res['rows'])} rows -> {values['out']}.md")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
