"""Which base models are worth a fusion? A quick check on the standalone runs' valid logits, before paying for
their fold models: a logistic stacker over the runs' log-odds, scored by 10-fold cross-validation on valid
(what decides), for every subset of the runs. For information only, each subset's stacker fit on all of valid
is also scored on test (test never chooses anything here). A `--seeds` folder (`OUT/seed-N` runs) is one member,
its seeds' log-odds averaged: the seed ensemble the fusion's `base_seeds` would use.

    python benchmarks/fusion_members.py lexical=runs/devign/lexical transformer=runs/X gnn=runs/Y \
        --out benchmarks/results/fusion_members.json
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from streamguard.train.seeds import average_logits, seed_runs


def log_odds(run: Path, split: str) -> dict[str, tuple[float, int]]:
    per_seed = [[json.loads(line) for line in (r / "predictions" / f"{split}.jsonl").read_text().splitlines()]
                for r in seed_runs(run)]
    return {r["id"]: (r["logits"][1] - r["logits"][0], int(r["label"])) for r in average_logits(per_seed, str(run))}


def matrix(runs: dict[str, Path], split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    per_run = {name: log_odds(path, split) for name, path in runs.items()}
    ids = sorted(set.intersection(*(set(p) for p in per_run.values())))
    if any(len(p) != len(ids) for p in per_run.values()):
        raise SystemExit(f"the runs' {split} predictions cover different items")
    x = np.array([[per_run[name][i][0] for name in runs] for i in ids])
    y = np.array([per_run[next(iter(runs))][i][1] for i in ids])
    return ids, x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    runs = {a.split("=", 1)[0]: Path(a.split("=", 1)[1]) for a in args.runs}
    _, xv, yv = matrix(runs, "valid")
    _, xt, yt = matrix(runs, "test")
    names = list(runs)
    folds = StratifiedKFold(10, shuffle=True, random_state=0)
    rows = []
    for k in range(1, len(names) + 1):
        for subset in itertools.combinations(range(len(names)), k):
            cols = list(subset)
            model = LogisticRegression()
            cv = cross_val_predict(model, xv[:, cols], yv, cv=folds, method="predict_proba")[:, 1]
            model.fit(xv[:, cols], yv)
            pt = model.predict_proba(xt[:, cols])[:, 1]
            rows.append({"members": [names[c] for c in cols],
                         "valid_cv_accuracy": round(accuracy_score(yv, cv > 0.5), 4),
                         "valid_cv_roc_auc": round(roc_auc_score(yv, cv), 4),
                         "test_accuracy": round(accuracy_score(yt, pt > 0.5), 4),
                         "test_roc_auc": round(roc_auc_score(yt, pt), 4),
                         "weights": [round(float(w), 3) for w in model.coef_[0]]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": {n: str(p) for n, p in runs.items()}, "subsets": rows}, indent=2) + "\n")
    print("| members | valid 10-fold accuracy | valid 10-fold ROC-AUC | test accuracy | test ROC-AUC |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {' + '.join(r['members'])} | {r['valid_cv_accuracy']:.3f} | {r['valid_cv_roc_auc']:.3f} | "
              f"{r['test_accuracy']:.3f} | {r['test_roc_auc']:.3f} |")


if __name__ == "__main__":
    main()
