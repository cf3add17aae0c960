#!/usr/bin/env bash
# Transfer lever "static analysers as a fusion member" (issue 25): on Devign cross-project (FFmpeg -> QEMU and
# QEMU -> FFmpeg, configs/pipeline-cross-project.yaml's split), lexical alone, analysers alone, and their fusion
# (2 folds, out of fold). A fusion of lexical alone is a monotone map of lexical (same ROC-AUC), so lexical alone
# is the "without analysers" row. Usage (from the repo root, a processed Devign dir made by `make devign` or
# `streamguard preprocess --tokenizer bpe`):
#   benchmarks/transfer_levers_analysers.sh PROCESSED_DEVIGN WORK_DIR ["FFmpeg:qemu qemu:FFmpeg"]
# then: python benchmarks/transfer_levers_analysers_summary.py WORK_DIR benchmarks/results/transfer_levers_analysers
set -euo pipefail
data=$1 work=$2 pairs=${3:-FFmpeg:qemu qemu:FFmpeg}
sg() { nice -n 10 "${PYTHON:-python}" -m streamguard.cli "$@"; }  # PYTHON: the venv's interpreter
mkdir -p "$work"
for pair in $pairs; do
  tr=${pair%%:*} te=${pair##*:} name="xp-$tr-to-$te"
  split=$work/data/$name runs=$work/runs/$name
  [ -f "$split/SUBSET.json" ] || sg data by-project --data "$data" --train-project "$tr" --test-project "$te" --out "$split"
  [ -f "$runs/lexical/predictions/test.jsonl" ] || sg train lexical --data "$split" --out "$runs/lexical"
  [ -f "$runs/analysers/predictions/test.jsonl" ] || \
    sg train analysers --data "$split" --out "$runs/analysers" --set cache_dir="$work/analyser_cache"
  printf 'cache_dir: %s\n' "$work/analyser_cache" > "$work/analysers.yaml"
  [ -f "$runs/fusion/predictions/test.jsonl" ] || \
    sg fuse --models lexical,analysers --data "$split" --out "$runs/fusion" --folds 2 \
      --set base_configs=lexical=configs/devign/lexical-fold.yaml,analysers="$work/analysers.yaml" \
      base_runs=lexical="$runs/lexical",analysers="$runs/analysers"
  [ -f "$work/reports/$name/metrics.json" ] || \
    sg evaluate --runs "$runs/lexical" "$runs/analysers" "$runs/fusion" --data "$split" \
      --out "$work/reports/$name" --primary fusion
done
