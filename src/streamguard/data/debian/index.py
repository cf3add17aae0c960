"""The source packages of Debian suites: the ``Sources`` index through apt with private directories (the
system's apt configuration is never touched; apt checks the index's signature), or read straight from a
mirror URL (``--mirror``: a local mirror or a test fixture; no signature check in that mode).
"""
from __future__ import annotations

import dataclasses
import gzip
import lzma
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from streamguard.errors import UserError

DEBIAN = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
_SUITE = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclasses.dataclass(frozen=True)
class SourceFile:
    name: str
    size: int
    sha256: str
    url: str
    fallback: str = ""  # the main archive's copy: the security archive omits orig tarballs it already had


@dataclasses.dataclass(frozen=True)
class SourcePackage:
    suite: str
    name: str
    version: str
    format: str
    files: tuple[SourceFile, ...]
    homepage: str = ""


def mirror_for(suite: str) -> str:
    return SECURITY if suite.endswith("-security") else DEBIAN


def paragraphs(text: str) -> list[dict[str, str]]:
    """RFC-822 style paragraphs (deb822): continuation lines joined with newlines."""
    out: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        para: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                para[key] += "\n" + line.strip()
            elif ":" in line and not line.startswith("#"):
                key, _, value = line.partition(":")
                key = key.strip()
                para[key] = value.strip()
        if para:
            out.append(para)
    return out


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256 if c else 0


def _cmp_part(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or a revision."""
    while a or b:
        na, nb = re.match(r"[^\d]*", a).group(), re.match(r"[^\d]*", b).group()
        for i in range(max(len(na), len(nb))):
            ca, cb = _order(na[i] if i < len(na) else ""), _order(nb[i] if i < len(nb) else "")
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(na):], b[len(nb):]
        da, db = re.match(r"\d*", a).group(), re.match(r"\d*", b).group()
        if int(da or 0) != int(db or 0):
            return -1 if int(da or 0) < int(db or 0) else 1
        a, b = a[len(da):], b[len(db):]
    return 0


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg --compare-versions orders Debian versions (epoch, upstream, revision)."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), up, rev
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


def parse_sources(text: str, suite: str, base_url: str, fallback_url: str = "") -> dict[str, SourcePackage]:
    """The newest version of every source package in a ``Sources`` text."""
    out: dict[str, SourcePackage] = {}
    for para in paragraphs(text):
        name, version = para.get("Package"), para.get("Version")
        if not name or not version:
            continue
        directory = para.get("Directory", "").strip("/")
        files = []
        for line in para.get("Checksums-Sha256", "").splitlines():
            parts = line.split()
            if len(parts) == 3:
                path = f"{directory}/{parts[2]}"
                files.append(SourceFile(parts[2], int(parts[1]), parts[0], f"{base_url}/{path}",
                                        f"{fallback_url}/{path.replace('pool/updates/', 'pool/', 1)}"
                                        if fallback_url else ""))
        pkg = SourcePackage(suite, name, version, para.get("Format", "1.0"), tuple(files), para.get("Homepage", ""))
        if name not in out or compare_versions(version, out[name].version) > 0:
            out[name] = pkg
    return out


def _apt(state: Path, suites: list[str]) -> None:
    if shutil.which("apt-get") is None:
        raise UserError("apt-get not found: use --mirror URL to read the Sources index from a mirror")
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text("".join(f"deb-src {mirror_for(s)} {s} main\n" for s in suites))
    cmd = ["apt-get", "-q", "-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
           "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", f"Dir::State::Lists={state / 'lists'}",
           "-o", f"Dir::Cache={state / 'cache'}", "-o", "Debug::NoLocking=1", "-o", "Acquire::GzipIndexes=false",
           "-o", "APT::Sandbox::User=root",  # a shared machine whose /dev/null was replaced by a file broke _apt
           "update"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or "Err:" in proc.stdout:
        err = next((ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith(("Err", "E:"))), "")
        raise UserError(f"apt-get update of {', '.join(suites)} failed: {err.strip()[:200]}")


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise UserError(f"cannot read {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"cannot read {url}: {exc}") from None


def load_index(suites: list[str], state: Path, mirror: str | None = None) -> tuple[dict, dict[str, str]]:
    """{suite: {package: SourcePackage}} and {suite: the index's Release date}."""
    for suite in suites:
        if not _SUITE.match(suite):
            raise UserError(f"--suites: {suite!r} is not a Debian suite name")
    index: dict[str, dict[str, SourcePackage]] = {}
    dates: dict[str, str] = {}
    if mirror is None:
        _apt(state, suites)
    for suite in suites:
        base = mirror.rstrip("/") if mirror else mirror_for(suite)
        if mirror:
            text = _mirror_sources(base, suite)
            release = (_get(f"{base}/dists/{suite}/Release") or b"").decode("utf-8", "replace")
        else:
            found = sorted((state / "lists").glob(f"*_dists_{suite}_main_source_Sources"))
            if not found:
                raise UserError(f"apt found no Sources index for suite {suite!r}")
            text = found[0].read_text(encoding="utf-8", errors="replace")
            rel = sorted((state / "lists").glob(f"*_dists_{suite}_InRelease"))
            release = rel[0].read_text(encoding="utf-8", errors="replace") if rel else ""
        index[suite] = parse_sources(text, suite, base, DEBIAN if base == SECURITY else "")
        dates[suite] = next((ln[5:].strip() for ln in release.splitlines() if ln.startswith("Date:")), "")
    return index, dates


def _mirror_sources(base: str, suite: str) -> str:
    for ext, unpack in ((".xz", lzma.decompress), (".gz", gzip.decompress), ("", bytes)):
        data = _get(f"{base}/dists/{suite}/main/source/Sources{ext}")
        if data is not None:
            return unpack(data).decode("utf-8", errors="replace")
    raise UserError(f"suite {suite!r} has no Sources index at {base}")
