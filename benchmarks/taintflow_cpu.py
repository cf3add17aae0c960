"""CPU time of one function's record with and without the taint-flow graph, in one process: every STEP-th
Devign function is featurized (tokenize, trim, parse, AST graph, record) both ways, in alternating chunks, and
the process's CPU time (not wall time: the machine is shared) is summed per way. Complements the wall-clock
`taintflow_preprocess.py`, which load from elsewhere makes noisy.

Usage: python benchmarks/taintflow_cpu.py --raw /work/shared/data/devign --processed PROCESSED [--step 10]
Prints JSON; `--out FILE` also writes it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from streamguard.features.featurize import Featurizer  # noqa: E402
from streamguard.features.preprocess import featurizer_init  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--processed", type=Path, required=True, help="for its tokenizer, vocabulary and options")
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = [json.loads(line) for s in ("train", "valid", "test")
            for line in (args.raw / f"{s}.jsonl").open()][:: args.step]
    init = featurizer_init(args.processed)
    plain = Featurizer.from_dir(Path(init[0]), init[1], init[2], init[3], init[4])
    taint = Featurizer.from_dir(Path(init[0]), init[1], init[2], {**init[3], "taint_graph": True}, init[4])
    cpu = {"ast": 0.0, "taint": 0.0}
    status: dict[str, int] = {}
    for start in range(0, len(rows), args.chunk):
        chunk = rows[start:start + args.chunk]
        for name, feat in (("ast", plain), ("taint", taint)) if start // args.chunk % 2 else \
                (("taint", taint), ("ast", plain)):
            t = time.process_time()
            recs = [feat.record(r, "train", i, "devign") for i, r in enumerate(chunk)]
            cpu[name] += time.process_time() - t
            if name == "taint":
                for rec in recs:
                    status[rec["taint"]["status"]] = status.get(rec["taint"]["status"], 0) + 1
    result = {"command": "python benchmarks/taintflow_cpu.py " + " ".join(sys.argv[1:]), "functions": len(rows),
              "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
              "ms_per_function": {k: round(1000 * v / len(rows), 2) for k, v in cpu.items()},
              "ratio_taint_to_ast": round(cpu["taint"] / cpu["ast"], 3), "taint_status": status}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
