#!/usr/bin/env bash
# What each AST compaction step costs (or buys) the GNN, side by side in one run on this machine:
# the same raw Devign data preprocessed three ways, then the same GNN (configs/devign/gnn.yaml) trained for the
# same number of epochs on each, one variant after the other (never two at once: the timings are wall time).
#   compact   : punctuation/keyword leaves dropped + single-child chains collapsed (the default)
#   no_collapse: punctuation dropped, chains kept
#   plain     : the plain tree-sitter AST (comments still dropped, directives blanked)
# Each variant's benchmarks/results/gnn_compaction_<name>.json comes from benchmarks/gnn_devign.py;
# benchmarks/gnn_compaction_summary.py writes the table to benchmarks/results/gnn_compaction.md.
# Usage: EPOCHS=5 benchmarks/gnn_compaction.sh   (needs data/raw/devign from `make devign`'s import step)
set -euo pipefail
EPOCHS=${EPOCHS:-5}
RAW=${RAW:-data/raw/devign}
PY=${PY:-.venv/bin/python}
export OMP_WAIT_POLICY=PASSIVE
declare -A FLAGS=(
  [compact]="ast_drop_punctuation=true ast_collapse_chains=true"
  [no_collapse]="ast_drop_punctuation=true ast_collapse_chains=false"
  [plain]="ast_drop_punctuation=false ast_collapse_chains=false"
)
for name in compact no_collapse plain; do
  data=data/processed/devign-ast-$name
  # shellcheck disable=SC2086
  $PY -m streamguard.cli preprocess --raw "$RAW" --out "$data" --tokenizer bpe --set ${FLAGS[$name]}
  rm -rf "runs/gnn-compaction-$name"
  $PY benchmarks/gnn_devign.py --name "gnn_compaction_$name" -- --data "$data" --out "runs/gnn-compaction-$name" \
    --config configs/devign/gnn.yaml --epochs "$EPOCHS" --tracking-uri off
done
$PY benchmarks/gnn_compaction_summary.py compact no_collapse plain
