#!/bin/bash
# The transformer from scratch vs from the shipped C encoder, Devign cross-project both ways (issue 25's encoder
# lever), one run per arm and seed. Both arms read the same data, preprocessed with the encoder's tokenizer, and
# use configs/devign/transformer.yaml (resp. transformer-pretrained.yaml) with the token budget cut to
# MAX_LENGTH (256 by default: the reduction of benchmarks/results/pretrain/README.md) for this 2-core CPU.
# Usage: REPO=checkout WORK=scratch RAW=raw Devign (streamguard data import codexglue) [SEEDS="1 2 3"] \
#        [MAX_LENGTH=256] [DIRS="FFmpeg:qemu qemu:FFmpeg"] bash benchmarks/encoder_cross_project.sh
# Runs already done (their test predictions exist) are kept, so an interrupted sweep resumes.
set -e
mkdir -p $WORK/logs
cd $REPO
export PYTHONPATH=$REPO/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY=PASSIVE
SG="${PYTHON:-$REPO/.venv/bin/python} -m streamguard.cli"
SEEDS=${SEEDS:-1} MAX_LENGTH=${MAX_LENGTH:-256} DIRS=${DIRS:-"FFmpeg:qemu qemu:FFmpeg"}
ENCODER=$REPO/models/streamguard-c-encoder
date
[ -f $WORK/dev/preprocessing_metadata.json ] || $SG preprocess --raw $RAW --out $WORK/dev --tokenizer $ENCODER --workers 2
for dir in FFmpeg:qemu qemu:FFmpeg; do
  tr=${dir%%:*}; te=${dir##*:}; name=$tr-to-$te
  [ -f $WORK/$name/SUBSET.json ] || $SG data by-project --data $WORK/dev --train-project $tr --test-project $te --out $WORK/$name
done
date
for seed in $SEEDS; do
  for dir in $DIRS; do
    tr=${dir%%:*}; te=${dir##*:}; name=$tr-to-$te
    for arm in scratch encoder; do
      cfg=configs/devign/transformer.yaml; [ $arm = encoder ] && cfg=configs/devign/transformer-pretrained.yaml
      run=$WORK/runs/$name-$arm-seed$seed
      [ -f $run/predictions/test.jsonl ] || $SG train transformer --data $WORK/$name --out $run --config $cfg \
        --set seed=$seed max_length=$MAX_LENGTH threads=1 tracking_uri=off model=$([ $arm = encoder ] && echo $ENCODER || echo tiny) > $WORK/logs/$(basename $run).log 2>&1
      echo "$(date) $name $arm seed $seed"
    done
  done
done
for dir in $DIRS; do
  tr=${dir%%:*}; te=${dir##*:}; name=$tr-to-$te
  $SG evaluate --runs "scratch=$WORK/runs/$name-scratch-seed*" "encoder=$WORK/runs/$name-encoder-seed*" \
    --data $WORK/$name --out $WORK/report-$name --primary encoder > $WORK/eval-$name.log 2>&1 \
    || echo "evaluate $name failed: see $WORK/eval-$name.log"
done
echo done
