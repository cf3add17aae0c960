"""Headless Chromium for the HTML report's tests: the page's DOM after its script ran, a screenshot, and every
console message (a CSP violation, a script error). CI installs Chromium (.ci/run) and sets CI=true: there these
checks fail without it and never skip; on a developer machine with only python3 they skip with the reason."""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]
_CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def chromium(url: str, args: list[str]) -> tuple[str, list[str]]:
    """(standard output, console messages) of one headless Chromium run on ``url`` with ``args``
    (``--dump-dom``, ``--screenshot=PATH``), in a fresh profile."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is required in CI: apt-get install chromium (as .ci/run does)")
        pytest.skip("no /usr/bin/chromium here: apt-get install chromium to run the HTML report's browser check")
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, url],
                             capture_output=True, text=True, timeout=180)
    return res.stdout, [m.group(1) for m in _CONSOLE.finditer(res.stderr)]
