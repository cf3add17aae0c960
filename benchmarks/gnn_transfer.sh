#!/bin/bash
# The GNN levers under the transfer job (docs/transfer.md): the transfer GNN trained on the merged data over the
# AST, over the taint-flow graph, and over the taint-flow graph with the fix-pair ranking loss; each scored on
# Devign's test and the held-out Debian packages, time split and Big-Vul pairs. The cross-project rows of these
# models are benchmarks/taint_gnn_cross_project.sh's (3 seeds), so the job runs with cross_project=false.
# Usage: REPO=checkout WORK=the lexical job's work folder (its raw/ and processed/devign are reused)
#        [ARMS="taint taint-pairs ast"] [SEEDS="42 2 3"] [SET="more key=value settings"] bash benchmarks/gnn_transfer.sh
# SET: the settings WORK's merge was made with (e.g. context_share=0.25), or the merge runs again with these.
# Tables: $OUT/gnn_<arm>_seed<N>.{md,json} (OUT: benchmarks/results/transfer_ablation); runs and held-out
# predictions in $WORK/runs-gnn-<arm>-seed<N>, $WORK/predictions-gnn-<arm>-seed<N>. Finished steps are skipped on a
# rerun.
set -e
cd $REPO
export PYTHONPATH=$REPO/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY=PASSIVE
OUT=${OUT:-$REPO/benchmarks/results/transfer_ablation}
PY=${PYTHON:-$REPO/.venv/bin/python}
for seed in ${SEEDS:-42}; do
  for arm in ${ARMS:-taint taint-pairs ast}; do
    cfg=configs/transfer/gnn-$arm.yaml; [ $arm = ast ] && cfg=configs/transfer/gnn.yaml
    echo "$(date) gnn $arm seed $seed"
    $PY benchmarks/transfer.py --set kinds=gnn cross_project=false taint_graph=true work=$WORK seed=$seed \
      data=$WORK/processed-taint vocab_from=$WORK/processed/devign gnn=$cfg runs=$WORK/runs-gnn-$arm-seed$seed \
      preds=$WORK/predictions-gnn-$arm-seed$seed out=$OUT/gnn_${arm}_seed$seed $SET
  done
done
echo "$(date) done"
