"""The best checkpoint: chosen the same way whether or not a run was killed and resumed, and repaired when
its file is damaged.

Why a resume could pick another best: Lightning writes the per-epoch and last checkpoints from the callback
state of that moment. When the per-epoch callback ran before the best-model callback, ``epoch-NNN.ckpt``
held a best score that had not seen epoch NNN yet, so after a resume the next epoch "beat" nothing and
overwrote a better ``best.ckpt``. The engine now runs ``BestCheckpoint`` first, and this callback records the
epoch it saved, so that every later checkpoint knows which epoch is best.

Every epoch checkpoint is kept, and ``best.ckpt`` holds the same weights as ``epoch-<best>.ckpt``: a damaged
(or stale) ``best.ckpt`` is restored from that file, or, when that one is damaged too, the run is retrained
from the newest good checkpoint before the best epoch (training is deterministic under ``--deterministic``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from streamguard.atomic import copy_file
from streamguard.errors import UserError
from streamguard.train import checkpoint as ck

log = logging.getLogger(__name__)


class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt`` on the monitored metric; remembers the epoch it holds and survives a moved run dir."""

    best_epoch: int | None = None

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        self.best_epoch = trainer.current_epoch  # before saving: best.ckpt itself carries it
        super()._save_checkpoint(trainer, filepath)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning drops the best score when the run dir moved (a mirror restored elsewhere), which made
        # the next epoch "best" again; the files are always ours, so map their paths into this folder.
        here = self.dirpath or ""

        def move(p: Any) -> Any:
            return os.path.join(here, os.path.basename(p)) if isinstance(p, str) and p else p

        state = {**state_dict, "dirpath": here,
                 **{k: move(state_dict.get(k)) for k in ("best_model_path", "kth_best_model_path",
                                                          "last_model_path")},
                 "best_k_models": {move(k): v for k, v in (state_dict.get("best_k_models") or {}).items()}}
        super().load_state_dict(state)
        self.best_epoch = state_dict.get("best_epoch")


def best_epoch_of(ckpt: dict[str, Any]) -> int | None:
    """The best epoch recorded in a checkpoint's callback state (None before any, or in an old run)."""
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).startswith(BestCheckpoint.__qualname__) and isinstance(state, dict):
            epoch = state.get("best_epoch")
            return None if epoch is None else int(epoch)
    return None


def _epoch_file(folder: Path, epoch: int) -> Path:
    return folder / f"epoch-{epoch:03d}.ckpt"


def _best_problem(folder: Path, epoch: int) -> str | None:
    got, why = ck.check(folder / ck.BEST)
    if got is None:
        return why
    if int(got["epoch"]) != epoch:
        return f"holds epoch {got['epoch']}, not the best epoch {epoch}"
    return None


def _restore_from_epoch(folder: Path, epoch: int, write: bool) -> dict[str, Any] | None:
    src = _epoch_file(folder, epoch)
    got, _ = ck.check(src)
    if got is None or int(got["epoch"]) != epoch:
        return None
    if write:
        copy_file(src, folder / ck.BEST)
        ck.record(folder / ck.BEST, got)
    return got


def repair_before_resume(folder: Path, resume: Path | None, write: bool = True) -> Path | None:
    """Make ``best.ckpt`` agree with the checkpoint training resumes from; return where to resume.

    A good ``epoch-<best>.ckpt`` is copied over a damaged or stale ``best.ckpt``; when that file is damaged
    too, training resumes from the newest good checkpoint before the best epoch (or from scratch) so that
    the best epoch is trained and saved again.
    """
    if resume is None:
        return None
    epoch = best_epoch_of(ck.load_checkpoint_file(resume))
    if epoch is None:
        return resume
    problem = _best_problem(folder, epoch)
    if problem is None:
        return resume
    if _restore_from_epoch(folder, epoch, write) is not None:
        log.warning("best.ckpt %s: restored from %s, the best epoch's checkpoint", problem,
                    _epoch_file(folder, epoch).name)
        return resume
    older = [p for e in range(epoch - 1, -1, -1) if (p := _epoch_file(folder, e)).is_file()]
    start = next((p for p in older if ck.check(p)[0] is not None), None)
    log.warning("best.ckpt %s and %s is unusable: retraining from %s to rebuild it", problem,
                _epoch_file(folder, epoch).name, start.name if start else "scratch")
    return start


def load_best(folder: Path) -> dict[str, Any]:
    """The checkpoint to predict with: ``best.ckpt``; the best epoch's own file when best.ckpt is damaged;
    ``last.ckpt`` when no epoch was ever validated."""
    best, why = ck.check(folder / ck.BEST)
    if best is not None:
        return best
    ref = ck.newest_valid(folder)
    if ref is None:
        raise UserError(f"no usable checkpoint in {folder}")
    ref_ckpt = ck.load_checkpoint_file(ref)
    epoch = best_epoch_of(ref_ckpt)
    if epoch is None:
        if (folder / ck.BEST).exists():
            raise UserError(f"{folder / ck.BEST} {why} and no checkpoint records the best epoch: rerun training")
        return ref_ckpt
    got = _restore_from_epoch(folder, epoch, write=False)
    if got is None:
        raise UserError(f"{folder / ck.BEST} {why} and {_epoch_file(folder, epoch).name} is unusable too: "
                        "rerun the training command, which rebuilds it")
    log.warning("best.ckpt %s: using %s, the best epoch's checkpoint (a rerun of training repairs best.ckpt)",
                why, _epoch_file(folder, epoch).name)
    return got
