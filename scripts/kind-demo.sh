#!/usr/bin/env bash
# kubetrain on kind, for users with Docker and internet: build both images from this checkout,
# create a kind cluster, load the images into it, install the chart with values-kind.yaml, and
# train examples/first-job.yaml to completion. Needs docker, kind, kubectl and helm on PATH.
# The tests run every step after `kind create cluster` against the dev cluster's real node
# (tests/containers): the same values file, the same images, the same first job.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cluster=${KIND_CLUSTER_NAME:-kubetrain}
operator_image=kubetrain/operator:0.1.0
trainer_image=kubetrain/trainer:0.1.0-cpu
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-demo: $tool is not on PATH; install it first" >&2; exit 1; }
done

echo "== images"
docker build -t "$operator_image" .
# PyTorch's CPU-only wheels (the Dockerfile's default TORCH_INDEX): a few hundred MB, not GBs.
docker build -t "$trainer_image" --build-arg BASE=python:3.11-slim --build-arg TORCH=torch==2.15.0 trainer-image/

echo "== kind cluster $cluster"
kind get clusters 2>/dev/null | grep -qx "$cluster" || kind create cluster --name "$cluster"
kubectl config use-context "kind-$cluster" >/dev/null
kind load docker-image --name "$cluster" "$operator_image" "$trainer_image"

echo "== operator (helm)"
helm upgrade --install kubetrain charts/kubetrain --namespace kubetrain-system --create-namespace \
  --values charts/kubetrain/values-kind.yaml --wait --timeout 5m

echo "== first job"
kubectl delete -f examples/first-job.yaml --ignore-not-found --wait=true >/dev/null
kubectl apply -f examples/first-job.yaml
kubectl wait --for=condition=Succeeded tj/first-job --timeout=30m
kubectl get tj first-job
