#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubectl at the pinned release
# (KUBERNETES_E2E_VERSION in deploy/versions.env) from the Go module proxy, once, into a cache folder
# keyed by version; later runs (and CI on the same machine) reuse it.
#
#   bash tools/scripts/k8s-e2e-build.sh     # prints the bin folder on its last line
#
# k8s.io/kubernetes replaces its 31 staging modules with ./staging, so `go install` refuses it: a
# wrapper module requires it and replaces each staging module with the published v0.<minor>.<patch>.
# Cold: 87 min on a 2-core machine shared with four other jobs (load average 20-30), ≈5 GB of Go
# caches; warm: a version check.
# Environment: DEIT_K8S_BIN_DIR (default ~/.cache/deit-serve/k8s-bin).
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=SCRIPTDIR/../../deploy/versions.env
source deploy/versions.env
version="$KUBERNETES_E2E_VERSION"
cache="${DEIT_K8S_BIN_DIR:-$HOME/.cache/deit-serve/k8s-bin}/$version"
bin="$cache/bin"
commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

built() {
  for c in "${commands[@]}"; do
    [ -x "$bin/$c" ] || return 1
  done
  "$bin/kube-apiserver" --version 2>/dev/null | grep -qxF "Kubernetes $version"
}
if built; then
  echo "kubernetes $version: cached in $bin" >&2
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "go is needed to build Kubernetes $version" >&2; exit 1; }

# v1.34.4 -> the staging modules' published v0.34.4
staging_version="v0.${version#v1.}"
minor="$(echo "$version" | cut -d. -f2)"
src="$cache/src"
mkdir -p "$src" "$bin"
staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)
{
  echo "module deit-serve.local/k8s-e2e-bin"
  echo
  echo "go 1.24.0"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $staging_version"; done
} >"$src/go.mod"
cat >"$src/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
cd "$src"
started=$SECONDS
echo "kubernetes $version: go mod tidy in $src" >&2
GOTOOLCHAIN=local GOFLAGS=-mod=mod nice -n 19 go mod tidy -e >&2
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitMinor=$minor"
echo "kubernetes $version: go build ${commands[*]} (niced; long when cold, see above)" >&2
# One go build for all four: the packages they share compile once.
GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false nice -n 19 \
  go build -trimpath -tags tools -ldflags "$ldflags" -o "$bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl >&2
built || { echo "kubernetes: built, but $bin/kube-apiserver is not $version" >&2; exit 1; }
echo "kubernetes $version: built in $((SECONDS - started))s into $bin" >&2
echo "$bin"
