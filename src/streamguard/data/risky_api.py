"""The risky C APIs: calls that are classic sources of memory-safety and injection bugs.

One list below both getting data (near-duplicate keys keep these names) and model input (the trimmer keeps the
window that holds them; the taint-flow graph's sinks), so neither imports the other for it.
"""
from __future__ import annotations

import re
from functools import lru_cache

# api name -> pattern that the called function's name must match in full (FFmpeg's av_malloc, QEMU's g_free
# and the like count as their libc counterparts)
RISKY_APIS: dict[str, str] = {
    "strcpy": r"strcpy", "strcat": r"strcat", "strncpy": r"strncpy", "strncat": r"strncat",
    "sprintf": r"sprintf", "vsprintf": r"vsprintf", "snprintf": r"v?snprintf", "gets": r"f?gets",
    "scanf": r"[fsv]?scanf", "memcpy": r"\w*memcpy", "memmove": r"memmove", "memset": r"memset",
    "alloca": r"alloca", "malloc": r"\w*malloc[z]?\w*", "calloc": r"\w*calloc", "realloc": r"\w*realloc\w*",
    "free": r"\w*free[p]?", "system": r"system", "popen": r"popen", "exec": r"exec(?:l|lp|le|v|vp|vpe|ve)",
    "read": r"f?read|recv",
}
_NAME = re.compile("|".join(f"(?P<{name}>{pat})" for name, pat in RISKY_APIS.items()))


@lru_cache(maxsize=65536)
def risky_name(identifier: str) -> str | None:
    m = _NAME.fullmatch(identifier)
    return m.lastgroup if m else None
