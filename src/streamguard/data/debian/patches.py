"""What a Debian source package says about its patches: the quilt ``series``, which patches fix a CVE (named
after it, naming it in their DEP-3 header, or tied to it in ``debian/changelog``), when the fix entered Debian
(the changelog entry that first mentions it), the licence of a file (``debian/copyright``), the upstream name.
"""
from __future__ import annotations

import dataclasses
import email.utils
import fnmatch
import re

from streamguard.data.debian.diff import header
from streamguard.data.debian.index import paragraphs

CVE = re.compile(r"CVE[-_](\d{4})[-_](\d{4,7})", re.IGNORECASE)
_ENTRY = re.compile(r"^(\S+) \(([^)]+)\) [^;]*;.*$")
_TRAILER = re.compile(r"^ -- .*?>\s+(.*)$")
_VERSIONED = re.compile(r"^(.*?[a-z+])(?:-?\d+(?:\.\d+)+|-\d+)$")
# Source packages whose name carries a major version without a dot (the regex cannot tell libxml2's 2 apart).
_ALIASES = {"freerdp2": "freerdp", "freerdp3": "freerdp", "gnutls28": "gnutls", "libgcrypt20": "libgcrypt",
            "libsdl2-image": "sdl_image", "libsdl3-image": "sdl_image", "libsoup3": "libsoup", "libtasn1-6": "libtasn1",
            "libuv1": "libuv", "pcre3": "pcre", "dhcpcd5": "dhcpcd", "openjpeg2": "openjpeg", "libgd2": "libgd",
            "bind9": "bind", "exim4": "exim", "grub2": "grub", "udisks2": "udisks", "apache2": "httpd",
            "python2.7": "python", "qt6-base": "qtbase", "qtbase-opensource-src": "qtbase", "mysql-8.0": "mysql"}
# Upstream names of Devign's projects: never in the package held-out set (a model trained on Devign saw them).
DEVIGN_PROJECTS = frozenset({"ffmpeg", "qemu", "libav"})


@dataclasses.dataclass(frozen=True)
class SeriesEntry:
    name: str      # path under debian/patches/
    strip: int     # quilt's -pN (default 1)


@dataclasses.dataclass(frozen=True)
class ChangelogEntry:
    version: str
    date: str      # YYYY-MM-DD (UTC)
    bullets: tuple[str, ...]


def cves_in(text: str) -> list[str]:
    """CVE ids in ``text``, upper-case with dashes, sorted and unique."""
    return sorted({f"CVE-{y}-{n}" for y, n in CVE.findall(text)})


def parse_series(text: str) -> list[SeriesEntry]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not line:
            continue
        parts = line.split()
        strip = 1
        for opt in parts[1:]:
            if re.fullmatch(r"-p\d+", opt):
                strip = int(opt[2:])
        out.append(SeriesEntry(parts[0], strip))
    return out


def parse_changelog(text: str) -> list[ChangelogEntry]:
    """Entries newest first, each with its date and its top-level bullets (sub-lines joined into them)."""
    out: list[ChangelogEntry] = []
    version, bullets = "", []
    for line in text.splitlines():
        m = _ENTRY.match(line)
        if m:
            version, bullets = m.group(2), []
            continue
        t = _TRAILER.match(line)
        if t and version:
            try:
                date = email.utils.parsedate_to_datetime(t.group(1).strip()).strftime("%Y-%m-%d")
            except (TypeError, ValueError, IndexError):
                date = ""
            out.append(ChangelogEntry(version, date, tuple(bullets)))
            version = ""
            continue
        if re.match(r"^  [*+-] ", line) or (re.match(r"^  \[", line)):
            bullets.append(line.strip())
        elif line.strip() and bullets:
            bullets[-1] += "\n" + line.strip()
    return out


def _mentions(bullet: str, patch: str) -> bool:
    base = patch.rsplit("/", 1)[-1]
    stem = re.sub(r"\.(patch|diff)$", "", base)
    return base in bullet or (len(stem) > 6 and re.search(rf"(?<![\w.-]){re.escape(stem)}(?![\w-])", bullet)
                              is not None)


def patch_cves(patch: str, text: str, changelog: list[ChangelogEntry]) -> tuple[list[str], list[str]]:
    """(CVE ids the patch fixes, where they were found: 'name', 'header', 'changelog')."""
    found: dict[str, list[str]] = {"name": cves_in(patch.rsplit("/", 1)[-1]), "header": cves_in(header(text))}
    if not found["name"] and not found["header"]:  # a changelog bullet often lists several fixes: the patch's
        # own name or header is the more precise source, so the changelog is read only when both are silent
        found["changelog"] = cves_in("\n".join(b for e in changelog for b in e.bullets if _mentions(b, patch)))
    ids = sorted({c for v in found.values() for c in v})
    return ids, [k for k, v in found.items() if v]


def fix_date(patch: str, cves: list[str], changelog: list[ChangelogEntry]) -> str:
    """The date of the oldest changelog entry that mentions the patch or one of its CVEs ('' if none)."""
    for entry in reversed(changelog):  # oldest first
        if entry.date and any(_mentions(b, patch) or any(c in b.upper() for c in cves) for b in entry.bullets):
            return entry.date
    return ""


def licence_of(copyright_text: str, path: str) -> str:
    """The licence (DEP-5 short name) of ``path``: the last ``Files:`` paragraph matching it wins."""
    if "Files:" not in copyright_text:
        return "see debian/copyright (not machine-readable)"
    found = ""
    for para in paragraphs(copyright_text):
        globs = para.get("Files", "").split()
        if globs and any(fnmatch.fnmatchcase(path, g) for g in globs):
            found = para.get("License", "").splitlines()[0].strip() if para.get("License") else found
    return found or "unknown"


def upstream_name(package: str) -> str:
    """The upstream project of a source package: versioned names folded (libpng1.6 -> libpng, glib2.0 -> glib,
    postgresql-13 -> postgresql); case folded to lower."""
    name = package.lower()
    if name in _ALIASES:
        return _ALIASES[name]
    m = _VERSIONED.match(name)
    return m.group(1) if m else name
