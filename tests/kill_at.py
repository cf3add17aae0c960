"""Run the streamguard CLI and SIGKILL it right after the Nth rename onto a file called NAME.

``SG_KILL_AT=NAME:N python tests/kill_at.py ARGS...``: every output is written to a temporary file and renamed
into place, so "after a rename" walks every point where a kill -9 can leave a different set of files.
"""
from __future__ import annotations

import os
import signal
import sys

NAME, N = os.environ["SG_KILL_AT"].rsplit(":", 1)
_count = 0
_real_replace = os.replace


def _replace(src: str, dst: str, *args: object, **kwargs: object) -> None:
    global _count
    _real_replace(src, dst, *args, **kwargs)
    if os.path.basename(os.fspath(dst)) == NAME:
        _count += 1
        if _count == int(N):
            os.kill(os.getpid(), signal.SIGKILL)


os.replace = _replace

if __name__ == "__main__":
    from streamguard.cli import main

    sys.exit(main(sys.argv[1:]))
