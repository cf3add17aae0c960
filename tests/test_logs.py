"""Logging configured once, library noise silenced at its source, and a pipeline step's output captured."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from streamguard import logs


def test_configure_once_and_lightning_stays_quiet() -> None:
    logs.configure()
    logs.configure()
    root = logging.getLogger()
    assert sum(isinstance(h, logs._Handler) for h in root.handlers) == 1
    from streamguard.train import tracking  # noqa: F401  (imports lightning, which resets its loggers)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "alembic"):
        lib = logging.getLogger(name)
        assert not lib.isEnabledFor(logging.INFO), name  # banners, tips, "Creating initial ... tables"
        assert not any(type(h) is logging.StreamHandler for h in lib.handlers), name  # no second copy
    assert logging.getLogger("lightning.pytorch").isEnabledFor(logging.WARNING)


def test_capture_sends_a_step_to_its_log_and_warnings_to_the_console(tmp_path: Path) -> None:
    logs.configure()
    shown: list[str] = []
    log = logging.getLogger("streamguard.test")
    with logs.capture(tmp_path / "logs" / "step.log", shown.append):
        print("a print")
        log.info("an info line")
        log.warning("a warning line")
    text = (tmp_path / "logs" / "step.log").read_text()
    assert "a print" in text and "an info line" in text and "warning: a warning line" in text
    assert shown == ["warning: a warning line"]


def test_known_library_deprecations_are_filtered_and_new_warnings_show() -> None:
    # in a fresh interpreter: pytest records warnings itself, which would hide what the filters do
    code = ("import warnings\nfrom streamguard import logs\nlogs.configure()\nlogs.configure()\n"
            "warnings.warn('`isinstance(treespec, LeafSpec)` is deprecated, use x', FutureWarning)\n"
            "warnings.warn('a new library warning', UserWarning)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "LeafSpec" not in proc.stderr
    assert proc.stderr.count("a new library warning") == 1 and proc.stderr.startswith("warning: ")
