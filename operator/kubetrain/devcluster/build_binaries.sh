#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy and caches them by version
# under ${KUBETRAIN_CACHE:-~/.cache/kubetrain}/bin/<component>-<version>/. A component whose
# binaries are already cached is skipped, so only a machine's first run pays for the build.
# Usage: build_binaries.sh [all|kubernetes|etcd|kwok|helm|coredns|registry|kueue]
# kueue is optional (only `kubetrain dev up --kueue` and the Kueue tests need it): `all` skips it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"
cache="${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
log() { printf '[build-binaries %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

have_all() { local dir=$1; shift; for b in "$@"; do [ -x "$dir/$b" ] || return 1; done; }

build_kubernetes() {
  local v=$KUBERNETES_VERSION out="$cache/bin/kubernetes-$KUBERNETES_VERSION"
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
  have_all "$out" "${bins[@]}" && { log "kubernetes $v cached in $out"; return; }
  local minor=${v#v1.}; minor=${minor%%.*}
  local staging_v="v0.${v#v1.}"
  local work="$cache/build/kubernetes-$v"; rm -rf "$work"; mkdir -p "$work" "$out"
  log "kubernetes $v: resolving modules (k8s.io/kubernetes pins its staging modules to v0.0.0; replacing each with $staging_v)"
  local modfile
  modfile=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module kubetrain.io/devcluster/kubernetes"
    echo "go 1.26.0"
    echo "require k8s.io/kubernetes $v"
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$modfile" | awk -v sv="$staging_v" '{print "replace " $1 " => " $1 " " sv}'
  } > "$work/go.mod"
  cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
  (cd "$work" && go mod tidy -e >/dev/null 2>&1 || true; cd "$work" && GOFLAGS="$GOFLAGS -mod=mod" go mod download k8s.io/kubernetes)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  local b
  for b in "${bins[@]}"; do
    [ -x "$out/$b" ] && continue
    log "kubernetes $v: building $b (cold builds take minutes on 2 cores)"
    (cd "$work" && go build -tags tools -mod=mod -trimpath -ldflags "$ld" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$out/$b.tmp" "$out/$b"
  done
  log "kubernetes $v: done -> $out"
}

build_etcd() {
  local v=$ETCD_VERSION out="$cache/bin/etcd-$ETCD_VERSION"
  have_all "$out" etcd && { log "etcd $v cached in $out"; return; }
  local work="$cache/build/etcd-$v"; rm -rf "$work"; mkdir -p "$work" "$out"
  log "etcd $v: building from go.etcd.io/etcd/server/v3 through a wrapper main"
  cat > "$work/go.mod" <<MOD
module kubetrain.io/devcluster/etcd
go 1.26.0
require go.etcd.io/etcd/server/v3 $v
MOD
  cat > "$work/main.go" <<'GO'
// Command etcd runs etcd's real entrypoint; it exists because go install refuses etcd's own
// module (its go.mod has replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$work" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" .)
  mv "$out/etcd.tmp" "$out/etcd"
  log "etcd $v: done -> $out"
}

build_go_install() {  # name version package binary
  local name=$1 v=$2 pkg=$3 bin=$4 out="$cache/bin/$1-$2"
  have_all "$out" "$bin" && { log "$name $v cached in $out"; return; }
  mkdir -p "$out"
  log "$name $v: go install $pkg@$v"
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "$pkg@$v"
  log "$name $v: done -> $out"
}

build_kueue() {
  local v=$KUEUE_VERSION out="$cache/bin/kueue-$KUEUE_VERSION"
  have_all "$out" kueue && [ -f "$out/webhooks.yaml" ] && { log "kueue $v cached in $out"; return; }
  build_go_install kueue "$v" sigs.k8s.io/kueue/cmd/kueue kueue
  # The CRDs and webhook configurations come from the same module source as the binary.
  local src
  src=$(cd "$out" && go mod download -json "sigs.k8s.io/kueue@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$out/crd"; mkdir -p "$out/crd"
  cp "$src"/config/components/crd/bases/*.yaml "$out/crd/"
  cp "$src/config/components/webhook/manifests.yaml" "$out/webhooks.yaml"
  log "kueue $v: CRDs and webhook manifests -> $out"
}

main() {
  local want=${1:-all}
  case $want in
    all|kubernetes) build_kubernetes ;;&
    all|etcd) build_etcd ;;&
    all|kwok) build_go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok ;;&
    all|helm) build_go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm ;;&
    all|coredns) build_go_install coredns "$COREDNS_VERSION" github.com/coredns/coredns coredns ;;&
    all|registry) build_go_install registry "$REGISTRY_VERSION" github.com/distribution/distribution/v3/cmd/registry registry ;;&
    kueue) build_kueue ;;
    *) ;;
  esac
}
main "$@"
