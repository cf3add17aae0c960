"""A tiny Debian mirror made in the test: suite ``testsec`` with two 3.0 (quilt) source packages.

``demo`` is the Linux kernel's real ``lib/hexdump.c`` (tests/fixtures/kernel_c) with five quilt patches made
by difflib: a non-security doc fix, a CVE-named patch (hex2bin), a patch naming its CVE only in its DEP-3 header
(bin2hex; its context holds the doc fix's line, so it applies only after it), a CVE patch that does not apply,
and a patch tied to its CVE only by the changelog (print_hex_dump, fixed in 2025: the time split).
``evil`` has a hostile upstream tarball: '..' and absolute names and symlinks leaving the tree.
"""
from __future__ import annotations

import difflib
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

HEXDUMP = Path(__file__).parent / "fixtures" / "kernel_c" / "lib" / "hexdump.c"
SUITE = "testsec"

DOC_OLD = " * bin2hex - convert binary data to an ascii hexadecimal string\n"
DOC_NEW = " * bin2hex - convert binary data to an ASCII hexadecimal string\n"
HEX2BIN_OLD = "int hex2bin(u8 *dst, const char *src, size_t count)\n{\n"
HEX2BIN_NEW = HEX2BIN_OLD + "\tif (!dst || !src)\n\t\treturn -EINVAL;\n"
BIN2HEX_OLD = "\twhile (count--)\n\t\tdst = hex_byte_pack(dst, *_src++);\n"
BIN2HEX_NEW = "\twhile (count-- && dst)\n\t\tdst = hex_byte_pack(dst, *_src++);\n"
PRINT_OLD = "\tunsigned char linebuf[32 * 3 + 2 + 32 + 1];\n\n"
PRINT_NEW = PRINT_OLD + "\tif (!buf)\n\t\treturn;\n\n"

EVIL_OLD = "unsigned char cu = ch & 0xdf;"
EVIL_NEW = "unsigned char cu = (unsigned char)(ch & 0xdf);"
CHANGELOG = """demo (1.0-2) testsec; urgency=high

  * Non-maintainer upload by the Security Team.
  * CVE-2025-4444: guard print_hex_dump against a NULL buffer
    (guard-print.patch)

 -- Security Team <team@security.debian.org>  Mon, 10 Feb 2025 10:00:00 +0000

demo (1.0-1) unstable; urgency=medium

  * Initial release; fix CVE-2024-1111 and CVE-2024-2222.

 -- Maintainer <m@example.org>  Tue, 05 Mar 2024 12:00:00 +0000
"""
COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: the Linux kernel's authors
License: GPL-2.0

Files: debian/*
Copyright: 2024 Maintainer
License: MIT
"""


def _diff(old: str, new: str, path: str, context: int = 3) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}",
                                        n=context))


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def demo_patches() -> dict[str, str]:
    src = HEXDUMP.read_text()
    after_doc = src.replace(DOC_OLD, DOC_NEW)
    after_cve1 = after_doc.replace(HEX2BIN_OLD, HEX2BIN_NEW)
    after_cve2 = after_cve1.replace(BIN2HEX_OLD, BIN2HEX_NEW)
    fake = after_cve2.replace("unsigned char cu = ch & 0xdf;", "unsigned char cu = ch & 0xDF; /* other tree */")
    after_cve3 = fake.replace("return -1 +\n", "return -1 + /* fixed */\n")
    return {
        "01-doc-ascii.patch": "Description: spelling\n---\n" + _diff(src, after_doc, "lib/hexdump.c"),
        "CVE-2024-1111.patch": "From: upstream\nSubject: hex2bin: reject NULL\n---\n"
                               + _diff(after_doc, after_cve1, "lib/hexdump.c"),
        "fix-bin2hex-overflow.patch": "Description: bound the output\nCVE: CVE-2024-2222\nBug: https://x.test/1\n"
                                      "---\n" + _diff(after_cve1, after_cve2, "lib/hexdump.c", context=8),
        "CVE-2024-3333.patch": "Description: made for another tree\n---\n"
                               + _diff(fake, after_cve3, "lib/hexdump.c"),
        "guard-print.patch": "Description: guard a NULL buffer\n---\n"
                             + _diff(after_cve2, after_cve2.replace(PRINT_OLD, PRINT_NEW), "lib/hexdump.c"),
    }


def _package(pool: Path, name: str, version: str, orig: bytes, debian: bytes) -> str:
    folder = pool / "pool" / "main" / name[0] / name
    folder.mkdir(parents=True, exist_ok=True)
    upstream = version.split("-")[0]
    files = {f"{name}_{upstream}.orig.tar.gz": orig, f"{name}_{version}.debian.tar.gz": debian}
    lines = []
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {fname}")
    return (f"Package: {name}\nVersion: {version}\nFormat: 3.0 (quilt)\nDirectory: pool/main/{name[0]}/{name}\n"
            "Checksums-Sha256:\n" + "\n".join(lines) + "\n")


def build_mirror(root: Path) -> Path:
    """Write the mirror under ``root``; return it (serve it over HTTP or read it as a file: URL)."""
    patches = demo_patches()
    series = "01-doc-ascii.patch\nCVE-2024-1111.patch\nfix-bin2hex-overflow.patch\n# a comment\n" \
             "CVE-2024-3333.patch\nguard-print.patch\n"
    demo_deb = {"debian/changelog": CHANGELOG.encode(), "debian/copyright": COPYRIGHT.encode(),
                "debian/patches/series": series.encode(),
                **{f"debian/patches/{k}": v.encode() for k, v in patches.items()}}
    demo = _package(root, "demo", "1.0-2", _tar({"demo-1.0/lib/hexdump.c": HEXDUMP.read_bytes(),
                                                  "demo-1.0/README": b"demo\n"}), _tar(demo_deb))
    ok = HEXDUMP.read_text()
    evil_orig = _tar({"evil-1.0/src/ok.c": ok.encode(), "../escape.c": b"int x;\n", "/abs.c": b"int y;\n"},
                     links={"evil-1.0/src/link.c": "/etc/passwd", "evil-1.0/src/up.c": "../../../outside.c"})
    evil_deb = {"debian/changelog": CHANGELOG.replace("demo", "evil").encode(),
                "debian/patches/series": b"CVE-2024-9001.patch\nCVE-2024-9002.patch\n",
                "debian/patches/CVE-2024-9001.patch": _diff(ok, ok.replace(EVIL_OLD, EVIL_NEW), "src/ok.c").encode(),
                "debian/patches/CVE-2024-9002.patch": _diff("int z;\n", "int z = 1;\n", "src/link.c").encode()}
    evil = _package(root, "evil", "1.0-1", evil_orig, _tar(evil_deb))
    dists = root / "dists" / SUITE
    (dists / "main" / "source").mkdir(parents=True, exist_ok=True)
    (dists / "main" / "source" / "Sources.gz").write_bytes(gzip.compress(f"{demo}\n{evil}".encode(), mtime=0))
    (dists / "Release").write_text(f"Suite: {SUITE}\nDate: Tue, 01 Dec 2026 00:00:00 UTC\n")
    return root
