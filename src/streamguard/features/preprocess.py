"""The preprocess stage: raw CodeXGLUE splits -> processed records + tokenizer + node vocabulary + metadata.

Work is spread over processes (tree-sitter and Python graph building are CPU-bound). The node vocabulary is
counted on the first ``vocab_sample`` train functions, so that records can be streamed to disk in one pass.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamguard.atomic import atomic_open, copy_file, write_json
from streamguard.config import PreprocessConfig, to_dict
from streamguard.data.rawdir import RawDir
from streamguard.data.records import SPLITS, RecordError, iter_jsonl, validate_raw, write_jsonl
from streamguard.errors import UserError
from streamguard.features.featurize import Featurizer, build_vocab, count_labels, load_vocab, save_vocab
from streamguard.features.processed import VOCAB_FILE, ProcessedDir
from streamguard.features.summary import print_summary, summarise
from streamguard.features.tokenize import SafeTokenizer
from streamguard.provenance import environment, sha256_file
from streamguard.runlock import locked

_WORKER: dict[str, Any] = {}
CHUNK = 16
# One function's text, in UTF-8 bytes. Devign's largest is 142 KB; a 5 MB function took preprocessing's
# peak memory from 0.36 to 1.5 GB, so bigger ones are rejected with a reason (docs/reliability.md).
MAX_FUNCTION_BYTES = 2_000_000


def ast_options(cfg: PreprocessConfig) -> dict[str, Any]:
    """The ASTParser options of a preprocessing config (shared with scan, which must parse the same way)."""
    return {"max_nodes": cfg.max_ast_nodes, "drop_punctuation": cfg.ast_drop_punctuation,
            "collapse_chains": cfg.ast_collapse_chains, **({"taint_graph": True} if cfg.taint_graph else {})}


def _init_worker(tokenizer_dir: str, identity: dict, max_tokens: int, ast_options: dict[str, Any],
                 vocab: list[str] | None, source: str, normalise: bool = False) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER["f"] = Featurizer.from_dir(Path(tokenizer_dir), identity, max_tokens, ast_options, vocab, normalise)
    _WORKER["source"] = source


def _count_task(code: str) -> tuple[Counter, Counter]:
    types, texts = Counter(), Counter()
    f: Featurizer = _WORKER["f"]
    count_labels(f.labels(code), types, texts)
    return types, texts


def record_task(task: tuple[str, int, Any]) -> tuple[str, int, str | None, dict | None, str | None]:
    """(split, row) -> the record as a JSON line and its statistics, or the reason it was rejected."""
    split, row_no, obj = task
    try:
        if isinstance(obj, RecordError):
            raise obj
        row = validate_raw(obj)
        size = len(row["func"].encode("utf-8"))
        if size > MAX_FUNCTION_BYTES:
            raise RecordError(f"function too large: {size} bytes (limit {MAX_FUNCTION_BYTES})")
        rec = _WORKER["f"].record(row, split, row_no, _WORKER["source"])
        return split, row_no, json.dumps(rec, ensure_ascii=False), rec["metadata"], None
    except RecordError as exc:
        return split, row_no, None, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a record must never crash the stage; it is rejected with the cause
        return split, row_no, None, None, f"internal error while processing: {type(exc).__name__}: {exc}"


def _parse(obj: Any) -> Any:
    """A validated flat row, or the RecordError: only plain rows travel to the workers (a deeply nested
    object could not even be pickled to them)."""
    if isinstance(obj, RecordError):
        return obj
    try:
        return validate_raw(obj)
    except RecordError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one hostile record is rejected, never the whole stage
        return RecordError(f"{type(exc).__name__}: {str(exc)[:200]}")


def _read_raw(raw: Path, cfg: PreprocessConfig) -> dict[str, list[tuple[int, Any, str]]]:
    if not raw.is_dir():
        raise UserError(f"raw dataset folder not found: {raw}")
    for split in SPLITS:
        if not RawDir(raw).split_path(split).is_file():
            raise UserError(f"{RawDir(raw).split_path(split)} not found (expected the output of `streamguard data "
                            "import`)")
    RawDir(raw).check_complete()
    splits = {}
    for split in SPLITS:
        path = RawDir(raw).split_path(split)
        entries = [(n, _parse(obj), prefix) for n, obj, prefix in iter_jsonl(path)]
        splits[split] = entries[: cfg.quick_test_size] if cfg.quick_test else entries
    return splits


def _fingerprint(raw: Path, cfg: PreprocessConfig) -> str:
    parts = [sha256_file(RawDir(raw).split_path(s)) for s in SPLITS] + [json.dumps(to_dict(cfg), sort_keys=True)]
    # the code that makes records is part of the input: a changed parser must not reuse stale output
    from streamguard.data import neardup, records, risky_api
    from streamguard.features import ast, featurize, normalise, taintflow, tokenize, trim
    from streamguard.features import cfg as flow_cfg
    parts += [sha256_file(m.__file__) for m in (sys.modules[__name__], featurize, ast, trim, tokenize, records,
                                                 risky_api, normalise, neardup, flow_cfg, taintflow)]
    if cfg.reuse_from:
        parts.append(sha256_file(ProcessedDir(cfg.reuse_from).vocab_path))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _prepare_tokenizer(splits: dict[str, list], out: Path, cfg: PreprocessConfig) -> SafeTokenizer:
    tok_dir = ProcessedDir(out).tokenizer_dir
    if cfg.reuse_from:
        src = ProcessedDir(cfg.reuse_from)
        if not src.tokenizer_dir.is_dir() or not src.vocab_path.is_file():
            raise UserError(f"--reuse-from {src}: not a processed dataset (no {src.tokenizer_dir.name}/ or "
                            f"{src.vocab_path.name})")
        shutil.copytree(src.tokenizer_dir, tok_dir, dirs_exist_ok=True)
        tok = SafeTokenizer.load(tok_dir)
        tok.name = src.metadata["tokenizer"]["name"]
        return tok
    if cfg.tokenizer == "bpe":
        texts = [o["func"] for _, o, _ in splits["train"] if isinstance(o, dict)
                 and isinstance(o.get("func"), str)]
        if not texts:
            raise UserError("cannot train the BPE tokenizer: the train split has no usable function")
        return SafeTokenizer.train_bpe(texts, cfg.bpe_vocab_size, tok_dir)
    tok = SafeTokenizer.load(cfg.tokenizer)
    tok.save(tok_dir)
    return tok


def _node_vocab(pool, splits: dict[str, list], out: Path, cfg: PreprocessConfig) -> list[str]:
    if cfg.reuse_from:
        vocab = load_vocab(ProcessedDir(cfg.reuse_from).vocab_path)
        copy_file(ProcessedDir(cfg.reuse_from).vocab_path, ProcessedDir(out).vocab_path)
        return vocab
    sample = [o["func"] for _, o, _ in splits["train"][: cfg.vocab_sample]
              if isinstance(o, dict) and isinstance(o.get("func"), str) and o["func"].strip()]
    types, texts = Counter(), Counter()
    for t, x in pool.imap_unordered(_count_task, sample, chunksize=CHUNK):
        types.update(t)
        texts.update(x)
    vocab = build_vocab(types, texts, cfg.node_vocab_size)
    save_vocab(ProcessedDir(out).vocab_path, vocab, len(sample))
    return vocab


def _source_name(raw: Path) -> str:
    return RawDir(raw).source_name("raw")


def _up_to_date(out: Path, fingerprint: str) -> dict | None:
    meta_path = ProcessedDir(out).meta_path
    if not meta_path.is_file() or not all((out / f"{s}.jsonl").is_file() for s in SPLITS):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return None  # damaged: redo the stage
    return meta if isinstance(meta, dict) and meta.get("fingerprint") == fingerprint else None


def _process_all(pool, tasks: list[tuple[str, int, Any]], out: Path,
                 raw_of: dict[tuple[str, int], str]) -> tuple[list[dict], list[dict]]:
    """Stream records to ``{split}.jsonl`` in input order; return their metadata and the rejects."""
    from rich.progress import Progress

    metas: list[dict] = []
    rejects: list[dict] = []
    with contextlib.ExitStack() as stack:  # every split file appears only when all are complete
        handles = {s: stack.enter_context(atomic_open(out / f"{s}.jsonl", "w")) for s in SPLITS}
        results = pool.imap(record_task, tasks, chunksize=CHUNK)
        with Progress(transient=True) as progress:
            bar = progress.add_task("preprocessing", total=len(tasks))
            for split, row_no, line, meta, reason in results:
                if line is None:
                    rejects.append({"split": split, "row": row_no, "reason": reason,
                                    "raw": raw_of.get((split, row_no), "")})
                else:
                    handles[split].write(line + "\n")
                    metas.append(meta)
                progress.advance(bar)
    return metas, rejects


@contextlib.contextmanager
def _sigterm_stops_cleanly() -> Iterator[None]:
    """SIGTERM ends the stage like Ctrl-C: the worker pool is terminated before its pipes close under it
    (no BrokenPipe tracebacks from the workers), temporary files are removed, one line, exit 143."""
    def stop(signum: int, frame: Any) -> None:
        print("streamguard: preprocess stopped by SIGTERM; rerun the same command to redo it", file=sys.stderr)
        raise SystemExit(143)

    try:
        old = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def preprocess(raw: Path, out: Path, cfg: PreprocessConfig) -> dict[str, Any]:
    """Run the stage; skip the work when ``out`` already holds the result of the same inputs and config."""
    with _sigterm_stops_cleanly(), locked(out, "--out"):
        return _preprocess(raw, out, cfg)


def _preprocess(raw: Path, out: Path, cfg: PreprocessConfig) -> dict[str, Any]:
    if cfg.reuse_from and not ProcessedDir(cfg.reuse_from).vocab_path.is_file():
        raise UserError(f"--reuse-from {cfg.reuse_from}: not a processed dataset (no {VOCAB_FILE})")
    if cfg.reuse_from and preprocess_config(Path(cfg.reuse_from)).normalise_identifiers != cfg.normalise_identifiers:
        # its models read (or do not read) normalised code: data for them must be made the same way
        raise UserError(f"--reuse-from {cfg.reuse_from} was preprocessed with normalise_identifiers="
                        f"{not cfg.normalise_identifiers}: set the same (--set normalise_identifiers=...)")
    started = time.time()
    splits = _read_raw(raw, cfg)
    fingerprint = _fingerprint(raw, cfg)
    if (meta := _up_to_date(out, fingerprint)) is not None:
        print(f"preprocess: {out} is up to date (same inputs and config)")
        return meta
    # the done marker goes first: a rerun killed half-way must not leave new splits beside old metadata
    ProcessedDir(out).meta_path.unlink(missing_ok=True)
    timings: dict[str, float] = {}
    tok = _prepare_tokenizer(splits, out, cfg)
    identity = tok.identity(out / "tokenizer")
    timings["tokenizer_s"] = round(time.time() - started, 2)
    source = _source_name(raw)
    workers = cfg.workers or os.cpu_count() or 1
    init = [str(out / "tokenizer"), identity, cfg.max_tokens, ast_options(cfg), None, source,
            cfg.normalise_identifiers]
    tasks = [(split, i, obj) for split in SPLITS for i, (_, obj, _) in enumerate(splits[split])]
    raw_of = {(split, i): prefix for split in SPLITS for i, (_, obj, prefix) in enumerate(splits[split])
              if isinstance(obj, RecordError)}
    with worker_pool(workers, init) as pool:
        vocab = _node_vocab(pool, splits, out, cfg)
    timings["node_vocab_s"] = round(time.time() - started - timings["tokenizer_s"], 2)
    init[4] = vocab
    t0 = time.time()
    with worker_pool(workers, init) as pool:
        metas, rejects = _process_all(pool, tasks, out, raw_of)
    timings["records_s"] = round(time.time() - t0, 2)
    write_jsonl(ProcessedDir(out).rejects_path, rejects)
    timings["total_s"] = round(time.time() - started, 2)
    meta = summarise(metas, rejects, {s: len(v) for s, v in splits.items()}, raw, cfg)
    meta.update({"fingerprint": fingerprint, "raw_dir": str(raw.resolve()), "tokenizer": identity,
                 "node_vocab_size": len(vocab), "workers": workers, "timings": timings, "config": to_dict(cfg),
                 "inputs_sha256": {s: sha256_file(RawDir(raw).split_path(s)) for s in SPLITS},
                 "environment": environment()})
    write_json(ProcessedDir(out).meta_path, meta)  # last: it marks the stage done
    print_summary(out, meta)
    return meta


class _InProcess:
    """Stands in for a pool when one worker is asked for: no process start-up, same code path."""

    def __init__(self, init: list):
        _init_worker(*init)

    def imap_unordered(self, fn, items, chunksize=1):
        return map(fn, items)

    def imap(self, fn, items, chunksize=1):
        return map(fn, items)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def worker_pool(workers: int, init: list):
    if workers <= 1:
        return _InProcess(init)
    # spawn, not fork: the parent may have started the tokenizers library's thread pool (BPE training)
    return mp.get_context("spawn").Pool(workers, _init_worker, init)


def preprocess_config(prep_dir: Path) -> PreprocessConfig:
    """The config a processed dataset was made with (keys this version no longer knows are dropped)."""
    saved = ProcessedDir(prep_dir).metadata.get("config") or {}
    names = {f.name for f in dataclasses.fields(PreprocessConfig)}
    return PreprocessConfig(**{k: v for k, v in saved.items() if k in names})


def featurizer_init(prep_dir: Path, source: str = "scan") -> list[Any]:
    """The worker's init arguments that featurize new functions exactly as ``prep_dir``'s records were: the same
    tokenizer, budget, AST options, vocabulary and identifier normalisation (scan, line evidence, the GNN's
    node text)."""
    data = ProcessedDir(prep_dir)
    cfg = preprocess_config(prep_dir)
    return [str(data.tokenizer_dir), data.metadata["tokenizer"], cfg.max_tokens, ast_options(cfg),
            data.node_vocab["labels"], source, cfg.normalise_identifiers]
