#!/bin/bash
# GNN over the AST vs over the taint-flow graph, Devign cross-project both ways, one run per seed
# Usage: REPO=checkout WORK=scratch RAW=raw Devign (streamguard data import codexglue) [SEEDS="1 2 3"] \
#        bash benchmarks/taint_gnn_cross_project.sh
# Runs already done (their test predictions exist) are kept, so an interrupted sweep resumes.
set -e
mkdir -p $WORK/logs
cd $REPO
export PYTHONPATH=$REPO/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY=PASSIVE MLFLOW_TRACKING_URI=sqlite:///$WORK/mlflow.db
SG="${PYTHON:-$REPO/.venv/bin/python} -m streamguard.cli"
SEEDS=${SEEDS:-1}
date
[ -f $WORK/dev/preprocessing_metadata.json ] || $SG preprocess --raw $RAW --out $WORK/dev --tokenizer bpe --workers 2 --set taint_graph=true
date
for dir in FFmpeg:qemu qemu:FFmpeg; do
  tr=${dir%%:*}; te=${dir##*:}; name=$tr-to-$te
  [ -f $WORK/$name/SUBSET.json ] || $SG data by-project --data $WORK/dev --train-project $tr --test-project $te --out $WORK/$name
done
for seed in $SEEDS; do
  for dir in FFmpeg:qemu qemu:FFmpeg; do
    tr=${dir%%:*}; te=${dir##*:}; name=$tr-to-$te
    for g in ast taint; do
      run=$WORK/runs/$name-$g-seed$seed
      [ -f $run/predictions/test.jsonl ] || $SG train gnn --data $WORK/$name --out $run --set graph=$g seed=$seed \
        epochs=4 batch_size=64 hidden=128 head_hidden=128 cache_dir=$WORK/cache > $WORK/logs/$(basename $run).log 2>&1
      echo "$(date) $name $g seed $seed"
    done
  done
done
for dir in FFmpeg:qemu qemu:FFmpeg; do
  tr=${dir%%:*}; te=${dir##*:}; name=$tr-to-$te
  $SG evaluate --runs "ast=$WORK/runs/$name-ast-seed*" "taint=$WORK/runs/$name-taint-seed*" --data $WORK/$name \
    --out $WORK/report-$name > $WORK/eval-$name.log 2>&1 || echo "evaluate $name failed: see $WORK/eval-$name.log"
done
echo done
