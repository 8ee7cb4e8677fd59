#!/usr/bin/env bash
# Builds the chart tools the tests use (helm, promtool) with `go install` at pinned versions into
# tests/infra/.cache/bin. Quick no-op when the pinned versions are already there. Without a Go
# toolchain the chart tests that need a tool are skipped, saying so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

HELM_VERSION=v3.22.0
PROMETHEUS_VERSION=v0.316.0   # the Go module version of Prometheus 3.16 (promtool)

bin=$PWD/.cache/bin
mkdir -p "$bin"

install() {  # name package version [ldflags]
  local name=$1 pkg=$2 version=$3 ldflags=${4-} stamp="$bin/.$1-$3"
  if [[ -x $bin/$name && -f $stamp ]]; then
    echo "chart tools: $name $version up to date"
    return
  fi
  if ! command -v go >/dev/null; then
    echo "chart tools: go not found; $name not installed (its tests will be skipped)" >&2
    return
  fi
  echo "chart tools: go install $pkg@$version ($(go env GOVERSION))"
  GOBIN=$bin go install -ldflags "$ldflags" "$pkg@$version"
  rm -f "$bin/.$name-"*
  touch "$stamp"
}

# What helm's own Makefile stamps in: its version and the Kubernetes version of its client-go
# (without them `helm template` assumes Kubernetes 1.20).
HELM_K8S_MINOR=37
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1"
  helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_ldflags"
install promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION"
