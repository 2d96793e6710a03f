#!/usr/bin/env bash
# The main job: bring the local cluster up and show its GPU node pools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kt=.venv/bin/kubetrain
$kt dev up >/dev/null
echo
echo "== node pools of the local cluster (kubeconfig: .kubetrain/dev/kubeconfig)"
$kt dev pools
