#!/bin/bash
# GNN over the AST vs over the taint-flow graph, Devign cross-project both ways, one seed each
# Usage: REPO=checkout WORK=scratch RAW=raw Devign (streamguard data import codexglue) bash benchmarks/taint_gnn_cross_project.sh
set -e
cd $REPO
export PYTHONPATH=$REPO/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY=PASSIVE MLFLOW_TRACKING_URI=sqlite:///$WORK/mlflow.db
SG="${PYTHON:-$REPO/.venv/bin/python} -m streamguard.cli"
date
[ -f $WORK/dev/preprocessing_metadata.json ] || $SG preprocess --raw $RAW --out $WORK/dev --tokenizer bpe --workers 2 --set taint_graph=true
date
COMMON="epochs=4 batch_size=64 hidden=128 head_hidden=128 seed=1 cache_dir=$WORK/cache"
for dir in FFmpeg:qemu qemu:FFmpeg; do
  tr=${dir%%:*}; te=${dir##*:}; name=$tr-to-$te
  [ -f $WORK/$name/SUBSET.json ] || $SG data by-project --data $WORK/dev --train-project $tr --test-project $te --out $WORK/$name
  for g in ast taint; do
    [ -f $WORK/runs/$name-$g/predictions/test.jsonl ] || $SG train gnn --data $WORK/$name --out $WORK/runs/$name-$g --set graph=$g $COMMON > $WORK/$name-$g.log 2>&1
    date
  done
  $SG evaluate --runs $WORK/runs/$name-ast $WORK/runs/$name-taint --data $WORK/$name --out $WORK/report-$name > $WORK/eval-$name.log 2>&1 || true
done
echo done
