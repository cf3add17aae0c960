"""The pipeline's live line: a rich progress bar for the stage that runs, gone when the stage ends.

A stage without a notion of progress shows a spinner and its elapsed time; a training stage drives the bar
through ``StageBar``, the Lightning progress bar that ``tracking.progress_bar`` hands the engine while a
pipeline display is active (otherwise the engine keeps its own bar on stderr).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

_active: StageDisplay | None = None


class StageDisplay:
    """One transient progress line on ``console``; a terminal animates it, a log file never sees it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console,
                                 transient=True, redirect_stdout=False, redirect_stderr=False,
                                 disable=not console.is_terminal)  # a log file gets the step lines only
        self.task: TaskID | None = None
        self.stage = ""

    def __enter__(self) -> StageDisplay:
        global _active
        self.progress.start()
        _active = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        _active = None
        self.progress.stop()

    def start(self, stage: str) -> None:
        self.stage = stage
        self.task = self.progress.add_task(stage, total=None, detail="")

    def update(self, what: str = "", completed: float | None = None, total: float | None = None,
               detail: str = "") -> None:
        if self.task is not None:
            desc = f"{self.stage} {what}".strip()
            self.progress.update(self.task, description=desc, completed=completed, total=total, detail=detail)

    def end(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def echo(self, line: str) -> None:
        """A line above the bar (a warning of the running stage)."""
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def active() -> StageDisplay | None:
    return _active


def stage_bar(run_name: Callable[[Path], str]) -> Any:
    """A Lightning progress bar that reports to the active display (import of Lightning deferred to here);
    ``run_name`` names a run by its folder (the trainer's, which knows: this module sits below it)."""
    from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

    class StageBar(ProgressBar):
        """Training progress (batches over all epochs) and the latest validation score, on the stage's line."""

        def __init__(self) -> None:
            super().__init__()
            self._enabled = True
            self._label: str | None = None

        def disable(self) -> None:
            self._enabled = False

        def enable(self) -> None:
            self._enabled = True

        def _show(self, trainer: Any, batches: int) -> None:
            display = active()
            if display is None or not self._enabled:
                return
            per_epoch = self.total_train_batches if isinstance(self.total_train_batches, int) else 0
            epochs = max(1, trainer.max_epochs or 1)
            done = min(trainer.current_epoch * per_epoch + batches, per_epoch * epochs)
            auc = trainer.callback_metrics.get("val_roc_auc")
            if self._label is None:  # a fusion's fold model says which one it is: gnn/fold-1
                name = run_name(Path(trainer.default_root_dir))
                self._label = "" if name == display.stage else name
            display.update(f"{self._label} epoch {trainer.current_epoch + 1}/{epochs}".strip(),
                           completed=done, total=per_epoch * epochs or None,
                           detail=f"val ROC-AUC {float(auc):.3f}" if auc is not None else "")

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._show(trainer, 0)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            self._show(trainer, batch_idx + 1)

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                self._show(trainer, trainer.num_training_batches)

    return StageBar()
