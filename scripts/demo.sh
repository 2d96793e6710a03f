#!/usr/bin/env bash
# The main job, end to end on this machine: the local control plane, the CRDs, the operator, and
# examples/pytorch-ddp-local.yaml (2 DDP workers on the executing `local` node pool) trained to
# completion on a generated data set; then the job's status and metrics.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
kt=.venv/bin/kubetrain
py=.venv/bin/python
state=${KUBETRAIN_DEV_DIR:-$root/.kubetrain/dev}
export KUBECONFIG=$state/kubeconfig
kubectl=$($py -c "from kubetrain.devcluster.binaries import expected_binaries; print(expected_binaries().kubectl)")

$kt dev --state-dir "$state" up >/dev/null
echo "== node pools"
$kt dev --state-dir "$state" pools

echo "== CRDs"
$kubectl apply --server-side -f crds/ >/dev/null
$kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
echo "installed: $(ls crds | tr '\n' ' ')"

echo "== data set (generated, deterministic)"
$py -m kubetrain_trainer.datagen tabular --out /var/tmp/kubetrain/data/tabular.csv --rows 2000 --seed 0
rm -rf /var/tmp/kubetrain/output/pytorch-ddp-local

echo "== operator (log: $state/logs/operator.log)"
$kt operator run --liveness-port "$($py -c "from kubetrain.devcluster.processes import free_port; print(free_port())")" >"$state/logs/operator.log" 2>&1 &
operator_pid=$!
trap 'kill $operator_pid 2>/dev/null || true; wait $operator_pid 2>/dev/null || true' EXIT

$kubectl delete tj pytorch-ddp-local --ignore-not-found --wait=true >/dev/null
$kubectl apply -f examples/pytorch-ddp-local.yaml
echo "== training (Ctrl-C stops the demo; the cluster keeps running: \`$kt dev down\` stops it)"
deadline=$((SECONDS + 600))
phase=""
while [ $SECONDS -lt $deadline ]; do
  phase=$($kubectl get tj pytorch-ddp-local -o jsonpath='{.status.phase}' 2>/dev/null || true)
  progress=$($kubectl get tj pytorch-ddp-local -o jsonpath='{.status.progress.percent}' 2>/dev/null || true)
  printf '\r  phase=%-10s progress=%s%%   ' "${phase:-?}" "${progress:-0}"
  case $phase in Succeeded|Failed) break ;; esac
  sleep 2
done
echo
$kubectl get tj pytorch-ddp-local
echo "== status.metrics"
$kubectl get tj pytorch-ddp-local -o jsonpath='{.status.metrics}'; echo
echo "== conditions"
$kubectl get tj pytorch-ddp-local -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}) {.message}{"\n"}{end}'
echo "== output: /var/tmp/kubetrain/output/pytorch-ddp-local"
ls /var/tmp/kubetrain/output/pytorch-ddp-local 2>/dev/null || true
[ "$phase" = Succeeded ]
