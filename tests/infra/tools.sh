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

install() {  # name package version
  local name=$1 pkg=$2 version=$3 stamp="$bin/.$1-$3"
  if [[ -x $bin/$name && -f $stamp ]]; then
    echo "chart tools: $name $version up to date"
    return
  fi
  if ! command -v go >/dev/null; then
    echo "chart tools: go not found; $name not installed (its tests will be skipped)" >&2
    return
  fi
  echo "chart tools: go install $pkg@$version ($(go env GOVERSION))"
  GOBIN=$bin go install "$pkg@$version"
  rm -f "$bin/.$name-"*
  touch "$stamp"
}

install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION"
