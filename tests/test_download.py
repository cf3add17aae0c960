"""`streamguard data download` against a real HTTP server on loopback serving a small copy."""
import hashlib
import http.server
import shutil
import socket
import threading
from functools import partial

import pytest

from streamguard.cli import main
from streamguard.data.download import download_codexglue
from streamguard.errors import UserError


@pytest.fixture()
def served(tmp_path, raw_small):
    root = tmp_path / "www"
    shutil.copytree(raw_small, root)
    sums = "".join(f"{hashlib.sha256((root / f'{s}.jsonl').read_bytes()).hexdigest()}  {s}.jsonl\n"
                   for s in ("train", "valid", "test"))
    (root / "SHA256SUMS").write_text(sums)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_checksums_and_imports(served, tmp_path):
    root, url = served
    record = download_codexglue(tmp_path / "dl", base_url=url, timeout=5)
    assert all(f["verified"] for f in record["files"].values())
    assert (tmp_path / "dl" / "test.jsonl").read_bytes() == (root / "test.jsonl").read_bytes()
    assert main(["data", "import", "codexglue", "--source", str(tmp_path / "dl"), "--out", str(tmp_path / "raw")]) == 0


def test_a_corrupt_file_is_refused_and_nothing_written(served, tmp_path):
    root, url = served
    (root / "valid.jsonl").write_text((root / "valid.jsonl").read_text()[:-10] + "tampered\n")
    with pytest.raises(UserError, match="checksum mismatch for valid.jsonl"):
        download_codexglue(tmp_path / "dl", base_url=url, timeout=5)
    assert not (tmp_path / "dl" / "train.jsonl").exists()


def test_offline_is_one_clear_line(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["data", "download", "codexglue", "--out", str(tmp_path / "dl"), "--url",
                 f"http://127.0.0.1:{port}", "--timeout", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "cannot reach" in err and "data import" in err
