"""Bytes per scored function kept by a scan report, for the ways a report could hold them (tracemalloc, one
process): the frozen dataclass before (a ``__dict__`` per finding), the slotted one now, a plain tuple, and
numpy columns (numbers in arrays, the strings still objects). Functions: tests/fixtures/kernel_c (307 real
kernel functions), each finding made N times with its own numbers, as a scan makes them (the path string is
shared by a file's functions, the name and fingerprint are one string each). ``python benchmarks/finding_bytes.py``."""
import dataclasses
import json
import tracemalloc
from pathlib import Path

import numpy as np

from streamguard.data.extract import function_nodes
from streamguard.scan.fingerprint import fingerprint
from streamguard.scan.results import Finding

N = 200
FIELDS = [(f.name, f.type) for f in dataclasses.fields(Finding)]
Before = dataclasses.make_dataclass("Before", FIELDS, frozen=True)  # Finding as it was: no slots


def functions() -> list[tuple]:
    root = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "kernel_c"
    out = []
    for p in sorted(root.rglob("*.c")):
        rel = str(p.relative_to(root))
        out += [(rel, fn.name, fn.start_line, fn.end_line, fingerprint(rel, fn.name, fn.code, node))
                for fn, node in function_nodes(p.read_bytes(), rel)]
    return out


def measure(make) -> float:
    funcs = functions()
    tracemalloc.start()
    # "".join: a copy of the name and fingerprint per finding, as unpickling each file's functions makes
    held = make([(p, "".join(n), s, e, "".join(fp)) for _ in range(N)
                 for p, n, s, e, fp in funcs])
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del held
    return size / (N * len(funcs))


def objects(cls):
    return lambda rows: [cls(p, n, s, e, 0.1 + i * 1e-9, 0.8, "clean", (), fp, 0.2 + i * 1e-9)
                         for i, (p, n, s, e, fp) in enumerate(rows)]


def columns(rows):
    return (np.array([0.1 + i * 1e-9 for i in range(len(rows))]), np.array([0.2 + i * 1e-9 for i in range(len(rows))]),
            np.array([r[2] for r in rows], dtype=np.int32), np.array([r[3] for r in rows], dtype=np.int32),
            [r[0] for r in rows], [r[1] for r in rows], [r[4] for r in rows])


print(json.dumps({"functions": len(functions()) * N, "bytes_per_function": {
    "dataclass (before)": round(measure(objects(Before))), "slotted dataclass (now)": round(measure(objects(Finding))),
    "tuple": round(measure(objects(lambda *a: a))), "numpy columns + string lists": round(measure(columns))}}))
