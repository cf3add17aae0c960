"""``streamguard data collect debian``: Debian security patches -> a pool of CVE before/after function pairs.

Each package's result is written once to ``OUT/work/SUITE/PACKAGE_VERSION.json.gz`` (its done marker, renamed
into place whole), so a killed run continues where it stopped; the pool, rejects and manifest are then rebuilt
from those files in a fixed order, giving the same bytes on every run (times go to ``OUT/run.json`` only).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rich.console import Console

from streamguard.data.debian.assemble import assemble
from streamguard.data.debian.index import SourcePackage, load_index
from streamguard.data.debian.package import process_package
from streamguard.errors import UserError
from streamguard.progress import StageDisplay

DEFAULT_SUITES = ("bullseye-security", "bookworm-security", "trixie-security")
_STABLE_UPDATE = re.compile(r"\+deb\d+u\d+")


def _work_file(out: Path, pkg: SourcePackage) -> Path:
    return out / "work" / pkg.suite / f"{pkg.name}_{pkg.version.replace(':', '%3a')}.json.gz"


def write_gz_json(path: Path, obj: Any) -> None:
    """gzip without a timestamp (same bytes every time), written to a temp file and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def read_gz_json(path: Path) -> Any:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def select(index: dict[str, dict[str, SourcePackage]], packages: list[str] | None) -> list[SourcePackage]:
    """The packages to read, suite by suite in the order given, names sorted; unknown names are an error.
    Without a list (``--all``): every package of the security suites, and of the other suites those that also
    had a security upload or a stable update (``+deb12u1``: point releases carry fixes of lesser CVEs); a main
    suite's other ~30,000 packages carry few CVE patches and would cost hours."""
    if packages is not None:
        known = {name for pkgs in index.values() for name in pkgs}
        unknown = sorted(set(packages) - known)
        if unknown:
            raise UserError(f"unknown source package(s) in {', '.join(index)}: {', '.join(unknown)}")
    security = {n for suite, pkgs in index.items() if suite.endswith("-security") for n in pkgs}
    out = []
    for suite, pkgs in index.items():
        for name in sorted(pkgs):
            if packages is not None and name not in packages:
                continue
            if packages is None and security and not suite.endswith("-security") and name not in security \
                    and not _STABLE_UPDATE.search(pkgs[name].version):
                continue
            out.append(pkgs[name])
    return out


def _run_one(task: tuple[SourcePackage, str, str]) -> str:
    pkg, cache, target = task
    try:
        result = process_package(pkg, Path(cache))
    except Exception as exc:  # noqa: BLE001 - one bad package never stops the run; its status says why
        result = {"package": pkg.name, "version": pkg.version, "suite": pkg.suite, "project": pkg.name,
                  "format": pkg.format, "patches": [], "rows": [], "counts": {}, "refused_members": [],
                  "status": f"failed: internal error {type(exc).__name__}: {str(exc)[:120]}"}
    write_gz_json(Path(target), result)
    return pkg.name


def _results(todo: list[tuple[SourcePackage, str, str]], jobs: int, deadline: float | None) -> Iterator[str]:
    if jobs <= 1:
        for task in todo:
            if deadline and time.time() > deadline:
                return
            yield _run_one(task)
        return
    with get_context("spawn").Pool(jobs) as pool:
        for name in pool.imap_unordered(_run_one, todo):
            yield name
            if deadline and time.time() > deadline:
                pool.terminate()  # a package cut off mid-way leaves no done marker: the next run redoes it
                return


def collect_debian(out: Path, suites: list[str], packages: list[str] | None, cache: Path, jobs: int = 1,
                   mirror: str | None = None, max_minutes: float | None = None) -> dict[str, Any]:
    """Collect the chosen packages of ``suites`` into ``out``; return the manifest. With ``max_minutes`` no
    package is started after that time: the dataset is written from the packages done (a later run goes on)."""
    started = time.time()
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    if packages is not None and not packages:
        raise UserError("--packages is empty")
    index, dates = load_index(suites, cache / "apt", mirror)
    chosen = select(index, packages)
    todo = [(p, str(cache / "files"), str(_work_file(out, p))) for p in chosen if not _work_file(out, p).exists()]
    console = Console(stderr=True)
    with StageDisplay(console) as display:
        display.start("collect debian")
        done = len(chosen) - len(todo)
        display.update(completed=done, total=len(chosen), detail=f"{done} done before")
        deadline = started + max_minutes * 60 if max_minutes else None
        for name in _results(todo, jobs, deadline):
            done += 1
            display.update(completed=done, total=len(chosen), detail=name)
        display.end()
    ready = [p for p in chosen if _work_file(out, p).exists()]
    results = [read_gz_json(_work_file(out, p)) for p in ready]
    manifest = assemble(results, out, suites, dates, pending=len(chosen) - len(ready))
    files = (cache / "files").glob("*") if (cache / "files").exists() else []
    disk = sum(f.stat().st_size for f in files if f.is_file())
    (out / "run.json").write_text(json.dumps({"seconds": round(time.time() - started, 1), "packages": len(chosen),
                                              "processed_now": len(todo), "cache_bytes": disk}, indent=2) + "\n")
    c = manifest["counts"]
    print(f"collected {c['pairs']} function pairs and {c['context_rows']} context rows from "
          f"{c['packages']['with_cve_pairs']}/{c['packages']['scanned']} packages ({c['projects_with_pairs']} "
          f"upstream projects); CVE patches {c['cve_patches']['found']} found, {c['cve_patches']['applied']} "
          f"applied, {c['cve_patches']['failed']} failed, {c['cve_patches']['skipped']} skipped"
          + (f"; {c['packages']['pending']} packages left for a later run" if c["packages"]["pending"] else "")
          + f" -> {out}",
          file=sys.stdout)
    return manifest
