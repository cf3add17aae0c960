#!/usr/bin/env bash
# GNN variants on full Devign, side by side on one GPU machine (the CPU here is too shared for a sweep).
# Input: a compact copy of data/processed/devign (id, label, ast_nodes, edge_index, project) in $GPUDATA
# as {train,valid,test}.jsonl.gz + node_vocab.json + preprocessing_metadata.json. Each variant trains with
# the engine (early stopping on val ROC-AUC), then scripts the summary with benchmarks/gnn_sweep_summary.py.
# Usage (on the GPU machine): GPUDATA=.gpudata EPOCHS=20 OUT=/tmp/out benchmarks/gnn_gpu_sweep.sh
# A variant still running after VARIANT_TIMEOUT seconds (default 400) is stopped; its metrics.csv remains.
set -uo pipefail
GPUDATA=${GPUDATA:-.gpudata}
EPOCHS=${EPOCHS:-20}
OUT=${OUT:-/tmp/gnn-sweep}
DATA=/tmp/devign
mkdir -p "$DATA" "$OUT"
for s in train valid test; do gunzip -c "$GPUDATA/$s.jsonl.gz" > "$DATA/$s.jsonl"; done
cp "$GPUDATA/node_vocab.json" "$GPUDATA/preprocessing_metadata.json" "$DATA/"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
# build the graph cache once, before the variants race for it
python3 -c "
from pathlib import Path
from streamguard.features.graphs import load_split, GraphOptions
for ncs in (False, True):
    for s in ('train', 'valid', 'test'):
        load_split(Path('$DATA'), s, GraphOptions(ncs=ncs, ident=ncs))
"
declare -A VARIANTS=(
  [spec]=""
  [spec_amp16]="precision=16-mixed"
  [res_norm]="residual=true norm=true warmup_epochs=1"
  [edges]="ncs_edges=true ident_edges=true"
  [res_norm_edges]="residual=true norm=true warmup_epochs=1 ncs_edges=true ident_edges=true"
  [ggnn]="conv=ggnn warmup_epochs=1"
  [spec_lr3e-4]="lr=0.0003"
)
for name in "${!VARIANTS[@]}"; do
  timeout "${VARIANT_TIMEOUT:-400}" python3 -m streamguard.cli train gnn --data "$DATA" --out "$OUT/$name" --config configs/gnn.yaml \
    --epochs "$EPOCHS" --monitor val_roc_auc --tracking-uri off \
    --set accelerator=gpu threads=2 ${VARIANTS[$name]} > "$OUT/$name.log" 2> "$OUT/$name.err" &
done
wait
python3 benchmarks/gnn_sweep_summary.py "$OUT"
