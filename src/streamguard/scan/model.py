"""A trained model (bundle or run directory) scoring arbitrary C functions through the training code path.

Functions are turned into processed records by the preprocessing workers themselves (``validate_raw`` +
``Featurizer.record`` with the model's tokenizer, trimming budget, AST options and node vocabulary), written as
a small processed dataset, and scored by the kind's own ``predict`` (docs/contracts.md): the very code that
produced the run's test predictions, so a bundle reproduces the run's scores exactly (``precision="fp32"``).

Neural forward passes run in bf16 by default where the CPU multiplies bf16 in hardware (``precision="auto"``):
1.5x faster on the job's fusion, scores within 0.004 of fp32 on Devign's test split
(benchmarks/results/scan_precision.md, scan_speed_bf16.md). ``onnx`` and ``int8`` run the transformer's forward
pass on ONNX Runtime, fp32 or dynamically quantised (models/onnx_runtime.py); other neural kinds (the GNN) run
fp32 torch under them. On Devign neither beat torch here (benchmarks/results/scan_onnx.md): not the default.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.data.records import RecordError, validate_raw
from streamguard.errors import UserError
from streamguard.features import preprocess as prep
from streamguard.features.processed import META_FILE, VOCAB_FILE, ProcessedDir
from streamguard.models import onnx_runtime
from streamguard.scan import PRECISIONS
from streamguard.train import registry

log = logging.getLogger(__name__)
SOURCE = "scan"
PREP_FILES = (META_FILE, VOCAB_FILE)


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX). Elsewhere bf16 is emulated and slower
    than fp32, so ``auto`` keeps fp32 there."""
    import torch
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers of torch.cpu: should a release drop them, stay with fp32
        return False


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: ``model_dir`` is run-dir shaped (exp_config.json + the kind's files),
    ``prep_dir`` holds ``tokenizer/``, ``node_vocab.json`` and ``preprocessing_metadata.json``."""
    kind: str
    model_dir: Path
    prep_dir: Path
    threshold: float
    name: str
    is_bundle: bool
    info: dict[str, Any] = field(default_factory=dict)


class Scorer:
    """Scores lists of function texts with one model; ``workers`` > 1 featurizes in that many processes;
    ``precision`` is that of the neural forward passes: fp32, bf16, or auto (bf16 where the CPU has it), or the
    transformer's on ONNX Runtime (onnx, int8); ``graphs``: a folder for the ONNX graphs made from the weights
    (a scan's ``--cache``; None: a temporary one)."""

    def __init__(self, source: ModelSource, workers: int = 1, precision: str = "auto"):
        if precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.source = source
        self.workers = workers
        self.precision = precision
        self._init = prep.featurizer_init(source.prep_dir, SOURCE)
        self._kind = registry.get(source.kind)
        self._pool: Any = None
        self.graphs: Path | None = None
        if precision in onnx_runtime.BACKENDS and self._kind.uses_torch(source.model_dir):
            onnx_runtime.require()  # before any work: one line saying what to install

    def effective_precision(self) -> str | None:
        """What the neural forward passes use; None for a kind that runs none (and must not import torch for
        nothing)."""
        if not self._kind.uses_torch(self.source.model_dir):
            return None
        if self.precision == "auto":
            self.precision = "bf16" if native_bf16() else "fp32"
        return self.precision

    def _forward_passes(self) -> contextlib.AbstractContextManager:
        """What the kind's ``predict`` runs inside: the one place the precision reaches it."""
        precision = self.effective_precision()
        if precision in onnx_runtime.BACKENDS:
            return onnx_runtime.running(precision, self.graphs)
        if precision != "bf16":
            return contextlib.nullcontext()
        import torch
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.__exit__(None, None, None)
            self._pool = None

    def records(self, codes: Sequence[str]) -> list[tuple[str | None, str | None]]:
        """(processed record as a JSON line, None) or (None, reason) per function, in order."""
        if not self._kind.reads_features(self.source.model_dir):
            # its ``predict`` takes the text from the raw rows: records carry only what ``read_split`` checks
            return [self._light_record(i, c) for i, c in enumerate(codes)]
        if self._pool is None:
            workers = self.workers if len(codes) >= 64 else 1  # a process pool costs seconds to start
            self._pool = prep.worker_pool(workers, self._init).__enter__()
        tasks = [("test", i, {"func": c, "target": 0}) for i, c in enumerate(codes)]
        out: list[tuple[str | None, str | None]] = [(None, "not processed")] * len(codes)
        for _, row, line, _, reason in self._pool.imap_unordered(prep.record_task, tasks, chunksize=prep.CHUNK):
            out[row] = (line, reason)
        return out

    @staticmethod
    def _invalid(code: str) -> str | None:
        """Why preprocessing would reject the function (None: it would not)."""
        try:
            validate_raw({"func": code, "target": 0})
        except RecordError as exc:
            return str(exc)
        return None

    @staticmethod
    def _light_record(row: int, code: str) -> tuple[str | None, str | None]:
        why = Scorer._invalid(code)  # the same checks as preprocessing
        if why is not None:
            return None, why
        rec = {"id": "", "code": code, "label": 0, "tokens": [], "metadata": {"row": row}}
        return json.dumps(rec, ensure_ascii=False), None

    def probabilities(self, codes: Sequence[str]) -> tuple[np.ndarray, list[str | None]]:
        """P(vulnerable) per function (NaN where it could not be processed) and the reason for each NaN."""
        probs = np.full(len(codes), np.nan)
        fast = getattr(self._kind, "score_texts", None)  # a kind that scores raw texts without a dataset
        if fast is not None and not self._kind.reads_features(self.source.model_dir):
            reasons = [self._invalid(c) for c in codes]
            keep = [i for i, r in enumerate(reasons) if r is None]
            scored = fast(self.source.model_dir, [codes[i] for i in keep], self.source.prep_dir) if keep \
                else np.zeros(0)
            if scored is not None:
                probs[keep] = scored
                return self._checked(probs, keep), reasons
        recs = self.records(codes)
        reasons = [reason for _, reason in recs]
        keep = [i for i, (line, _) in enumerate(recs) if line is not None]
        if not keep:
            return probs, reasons
        # Length-sorted: the neural kinds batch in file order and pad to the longest item of a batch.
        parsed = {i: json.loads(recs[i][0]) for i in keep}
        keep.sort(key=lambda i: len(parsed[i]["tokens"]))
        with tempfile.TemporaryDirectory(prefix="streamguard-scan-") as tmp:
            data_dir = self._dataset(Path(tmp), [parsed[i] for i in keep], [codes[i] for i in keep])
            with self._forward_passes():
                rows = self._kind.predict(self.source.model_dir, data_dir, "test")
        by_id = {r["id"]: r["prob_vulnerable"] for r in rows}
        for pos, i in enumerate(keep):
            probs[i] = by_id[f"{SOURCE.upper()}-TEST-{pos}"]
        return self._checked(probs, keep), reasons

    def _checked(self, probs: np.ndarray, keep: list[int]) -> np.ndarray:
        if not np.isfinite(probs[keep]).all():  # NaN here means "not scored", which would hide a broken model
            raise UserError(f"model {self.source.name}: {int((~np.isfinite(probs[keep])).sum())} of {len(keep)} "
                            "functions got a non-finite score (NaN or inf); the model is broken")
        return probs

    def _dataset(self, root: Path, recs: list[dict[str, Any]], codes: list[str]) -> Path:
        """A processed dataset of one ``test`` split holding ``recs`` (rows renumbered 0..n-1 so that ids and
        the raw rows a kind reading raw text takes line up), with the model's tokenizer and vocabulary."""
        data, raw = root / "data", root / "raw"
        data.mkdir()
        raw.mkdir()
        with open(data / "test.jsonl", "w", encoding="utf-8") as fh, \
                open(raw / "test.jsonl", "w", encoding="utf-8") as fr:
            for pos, (rec, code) in enumerate(zip(recs, codes)):
                rec["id"] = f"{SOURCE.upper()}-TEST-{pos}"
                rec["metadata"]["row"] = pos
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fr.write(json.dumps({"func": code, "target": 0, "idx": pos}, ensure_ascii=False) + "\n")
        meta = dict(ProcessedDir(self.source.prep_dir).metadata)
        meta["raw_dir"] = str(raw)
        ProcessedDir(data).meta_path.write_text(json.dumps(meta))
        shutil.copy(ProcessedDir(self.source.prep_dir).vocab_path, ProcessedDir(data).vocab_path)
        os.symlink(self.source.prep_dir.resolve() / "tokenizer", data / "tokenizer")
        return data
