"""Console output, configured once per process (``cli.main`` calls ``configure``).

One handler on the root logger and nothing else prints log records, so no line appears twice: Lightning adds
its own handler only when the root has none at import, and MLflow is asked not to configure logging at all.
Noise is silenced at its source, by name: Lightning's banners and tips ("GPU available", litlogger/litmodels
tips) are INFO records of ``lightning.*``, MLflow's "Creating initial MLflow database tables" is an INFO record
of ``mlflow``, alembic logs its migrations at INFO; all of these stay at WARNING. Known deprecation warnings
of the libraries (not of this code) are filtered by message, so that a new warning still shows.

While a pipeline step runs, ``capture(path)`` sends everything the step prints or logs to its log file; a
warning or an error also reaches the console.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

QUIET = {"lightning": logging.WARNING, "lightning.pytorch": logging.WARNING, "lightning.fabric": logging.WARNING,
         "pytorch_lightning": logging.WARNING, "mlflow": logging.WARNING, "alembic": logging.WARNING,
         "sqlalchemy": logging.WARNING, "urllib3": logging.WARNING, "httpx": logging.WARNING,
         "filelock": logging.WARNING}
# (message regex, category): deprecations inside the libraries, which this project can neither fix nor act on
KNOWN_WARNINGS = [
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),  # torch pytree, called by Lightning
    (r"The ``noload`` loader strategy is deprecated", Warning),  # SQLAlchemy, called by MLflow's store
    (r"`torch\.jit\.script` is deprecated", DeprecationWarning),  # torch, called by torch_geometric
    (r"The number of training batches \(\d+\) is smaller than the logging interval", Warning),  # small data
    (r"The '\w+_dataloader' does not have many workers", Warning),  # num_workers=0 is the CPU default here
]
# set before the libraries are imported: they read these once
ENVIRONMENT = {"MLFLOW_CONFIGURE_LOGGING": "false", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}

_configured = False
_sink: TextIO | None = None  # the running pipeline step's log file
_echo: Callable[[str], None] | None = None  # how a console line is shown while a step is captured


class _Handler(logging.Handler):
    """Message only for INFO, ``warning: ...`` above; into the step's log file while one is captured."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if record.levelno >= logging.WARNING:
                msg = f"{record.levelname.lower()}: {msg}"
            if _sink is not None:
                _sink.write(msg + "\n")
                _sink.flush()
                if record.levelno < logging.WARNING:
                    return
            if _echo is not None:
                _echo(msg)
            else:
                sys.stderr.write(msg + "\n")
                sys.stderr.flush()
        except Exception:  # logging must never take the job down
            self.handleError(record)


def configure(level: int = logging.INFO) -> None:
    """Idempotent: the first call sets up logging and warnings for the process; later calls do nothing."""
    global _configured
    if _configured:
        return
    _configured = True
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    root = logging.getLogger()
    # a console handler someone else put there (logging.basicConfig) would print every line a second time;
    # handlers that write elsewhere (pytest's capture, a file) stay
    root.handlers = [h for h in root.handlers if not _to_console(h)] + [_Handler()]
    root.setLevel(level)
    quiet()
    logging.captureWarnings(True)  # warnings reach the same handler (and a step's log file)
    for pattern, category in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)


def quiet() -> None:
    """The libraries' loggers at their QUIET level, without console handlers of their own. Importing
    ``lightning`` sets its loggers back to INFO and adds a handler, so its importer calls this again."""
    for name, lvl in QUIET.items():
        lib = logging.getLogger(name)
        lib.setLevel(lvl)
        lib.handlers = [h for h in lib.handlers if type(h) is not logging.StreamHandler]
        lib.propagate = True


def _to_console(handler: logging.Handler) -> bool:
    return isinstance(handler, _Handler) or (type(handler) is logging.StreamHandler
                                              and handler.stream in (sys.stderr, sys.stdout, sys.__stderr__,
                                                                     sys.__stdout__))


@contextlib.contextmanager
def capture(path: Path, echo: Callable[[str], None]) -> Iterator[None]:
    """Send what runs inside to ``path`` (prints, log records, warnings); warnings and errors are also
    shown with ``echo`` (the pipeline's console, above its progress bar). The previous streams come back on
    the way out, whatever happens inside."""
    global _sink, _echo
    path.parent.mkdir(parents=True, exist_ok=True)
    old = (sys.stdout, sys.stderr, _sink, _echo)
    with open(path, "a", encoding="utf-8", errors="replace", buffering=1) as fh:
        _sink, _echo = fh, echo
        sys.stdout = sys.stderr = fh
        try:
            yield
        finally:
            sys.stdout, sys.stderr, _sink, _echo = old
