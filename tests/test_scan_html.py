"""The HTML report on a real project tree (tests/fixtures/kernel_c: files of Linux's lib/), in headless Chromium:
overview, histogram, summary table, per-file table, collapsed findings, and the filters running under the CSP."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from scan_browser import chromium
from scan_fixture import make_bundle

from streamguard.cli import main
from streamguard.scan import html

KERNEL = Path(__file__).parent / "fixtures" / "kernel_c"


@pytest.fixture(scope="module")
def page(processed_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("htmlreport")
    _, bundle = make_bundle(processed_small, root)
    out = root / "report.html"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # outside the tree: paths come out relative to the scanned folder
        assert main(["scan", str(KERNEL), "--model", str(bundle), "--format", "html", "--out", str(out),
                     "--threshold", "accuracy", "--fail-on", "none", "--top", "30"]) == 0
    return out


def _sections(dom: str) -> list[tuple[str, bool]]:
    """(file, hidden) of every finding section in a dumped DOM."""
    pattern = r'<section class="fn [a-z]+" id="f-\d+" data-score="[0-9.]+" data-file="([^"]*)"[^>]*>'
    return [(m.group(1), "hidden" in m.group(0)) for m in re.finditer(pattern, dom)]


def test_report_has_the_overview_and_relative_paths(page):
    text = page.read_text()
    assert f"{KERNEL}/lib" not in text and "<code>lib/sort.c" in text  # relative to the tree, root once
    assert text.count(str(KERNEL)) == 1
    assert re.search(r"<b>\d+</b> of <b>\d+</b> functions flagged \(<b>[\d.]+%</b>\)", text)
    assert '<svg class="hist"' in text and "<rect" in text and 'class="files"' in text
    assert "<details><summary>whole function" in text and 'class="gap"' in text
    assert "{'" not in text and "'}" not in text  # the summary is a table, not Python reprs
    assert re.search(r"<th>files skipped</th><td>\d+ \(", text)
    assert html.SCRIPT_HASH in text and text.lower().count("<script") == 1


def test_filters_run_offline_under_the_csp_in_chromium(page):
    dom, console = chromium(page.as_uri(), ["--dump-dom"])
    assert console == [] and 'data-filters="ready"' in dom  # the script ran: its hash matches the CSP
    shown = _sections(dom)
    assert len(shown) == 30 and not any(hidden for _, hidden in shown)
    dom, console = chromium(page.as_uri() + "#file=lib/sort.c", ["--dump-dom"])
    by_file = _sections(dom)
    assert console == [] and any(f == "lib/sort.c" for f, _ in by_file)
    assert all(hidden == (f != "lib/sort.c") for f, hidden in by_file)
    dom, _ = chromium(page.as_uri() + "#min=1", ["--dump-dom"])
    assert all(hidden for _, hidden in _sections(dom)) and "0 of 30 shown" in dom


def test_screenshot_and_no_console_error(page, tmp_path):
    shot = tmp_path / "report.png"
    _, console = chromium(page.as_uri(), [f"--screenshot={shot}", "--window-size=1280,1600",
                                          "--hide-scrollbars"])
    assert console == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a rendered page, not a blank one
