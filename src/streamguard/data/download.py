"""Download the public CodeXGLUE Defect-detection copy and verify its checksums.

Checksums come from a ``SHA256SUMS`` file beside the data when the server has one, else from those shipped
with StreamGuard (the official test split is known byte for byte). A file with no known checksum is kept,
and its sha256 is recorded in ``download.json`` with ``verified: false``.
"""
from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from importlib import resources
from pathlib import Path

from streamguard.atomic import promote, write_json
from streamguard.data.records import SPLITS
from streamguard.errors import UserError

DEFAULT_URL = "https://raw.githubusercontent.com/madlag/CodeXGLUE/main/Code-Code/Defect-detection/dataset"


def _fetch(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise UserError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        host = urllib.parse.urlparse(url).netloc
        raise UserError(f"cannot reach {host} ({reason}): offline? Copy the files by hand and run "
                        "`streamguard data import codexglue --source DIR`") from None


def _known_checksums(base_url: str, timeout: float) -> dict[str, str]:
    try:
        text = _fetch(f"{base_url}/SHA256SUMS", timeout).decode("utf-8", errors="replace")
    except UserError:
        shipped = resources.files("streamguard.resources").joinpath("codexglue_sha256.json").read_text()
        return {k: v for k, v in json.loads(shipped).items() if not k.startswith("_")}
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def download_codexglue(out: Path, base_url: str | None = None, timeout: float = 30.0) -> dict:
    base = (base_url or DEFAULT_URL).rstrip("/")
    sums = _known_checksums(base, timeout)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"base_url": base, "files": {}}
    for split in SPLITS:
        name = f"{split}.jsonl"
        data = _fetch(f"{base}/{name}", timeout)
        digest = hashlib.sha256(data).hexdigest()
        expected = sums.get(name)
        if expected and expected != digest:
            raise UserError(f"checksum mismatch for {name}: expected {expected[:16]}..., got {digest[:16]}... "
                            "(corrupt or changed download; nothing was written)")
        record["files"][name] = {"sha256": digest, "bytes": len(data), "verified": bool(expected)}
        (out / f"{name}.part").write_bytes(data)
    for name in record["files"]:
        promote(out / f"{name}.part", out / name)
    write_json(out / "download.json", record)
    unverified = [n for n, f in record["files"].items() if not f["verified"]]
    note = f" (no published checksum for {', '.join(unverified)}: sha256 recorded)" if unverified else ""
    print(f"downloaded {', '.join(record['files'])} from {base} -> {out}{note}")
    return record
