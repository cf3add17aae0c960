#!/usr/bin/env bash
# The reduced ablation of issue 11 end to end (see benchmarks/pretrain_ablation.py for what is reduced):
# 3 seeds from scratch and 3 from the shipped encoder, 3 processes at a time, then one evaluation with
# the pre-trained arm as the primary entry. Finished runs are skipped, so a rerun resumes.
#   bash benchmarks/pretrain_ablation.sh PROCESSED_DIR ENCODER_DIR RUNS_DIR REPORT_DIR
set -euo pipefail
DATA=$1 ENCODER=$2 RUNS=$3 REPORT=$4
PY=${PY:-.venv/bin/python}
SUBSET=$DATA-ablation
[ -f "$SUBSET/SUBSET.json" ] || $PY benchmarks/pretrain_ablation.py subset --data "$DATA" --out "$SUBSET" \
  --train 2000 --valid 500
for arm in scratch pretrained; do
  for seed in 1 2 3; do
    nice -n 10 $PY benchmarks/pretrain_ablation.py run --data "$SUBSET" --out "$RUNS" --arm $arm \
      --encoder "$ENCODER" --seed $seed --max-length 256 --epochs 2 --threads 1 > "$RUNS-$arm-$seed.log" 2>&1 &
  done
  wait
done
$PY -m streamguard.cli evaluate --runs "scratch=$RUNS/scratch-seed*" "pretrained=$RUNS/pretrained-seed*" \
  --out "$REPORT" --primary pretrained
