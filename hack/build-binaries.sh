#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules, pinned in hack/versions.env,
# into a cache keyed by version outside the clone:
#   ${TURNOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/turnout}/bin/<component>/<version>/<binary>
# and copies the Gateway API's standard CRDs from its module (nothing to build) to
#   .../turnout/crds/gateway-api/<version>/*.yaml
# and unpacks Prometheus from the Debian package of that version (apt-get download; nothing is
# installed on the system) to .../turnout/bin/prometheus/<version>/prometheus
# A second run with the cache present only checks that the files are there.
# Prints the directory of each component on stdout as NAME=PATH lines; progress goes to stderr.
#
# Usage: hack/build-binaries.sh [component ...]
#        (default: all; components: kube etcd kwok helm gateway-api prometheus)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${TURNOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/turnout}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Runs a build command while printing the component and the elapsed time every 30 s.
with_progress() {
  local what=$1; shift
  local start=$SECONDS
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && log "$what: still building, $((SECONDS - start)) s elapsed"
  done
  if ! wait "$pid"; then log "$what: FAILED after $((SECONDS - start)) s"; return 1; fi
  log "$what: built in $((SECONDS - start)) s"
}

# Kubernetes' go.mod points its staging modules at ./staging/..., so `go install pkg@v` refuses it.
# A wrapper module requires k8s.io/kubernetes and replaces every staging module with its
# published v0.Y.Z twin.
build_kube() {
  local dest=$cache/bin/kubernetes/$KUBERNETES_VERSION
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  lock_component kubernetes
  if all_present "$dest" "${bins[@]}"; then echo "KUBE_BIN=$dest"; return; fi
  local work=$cache/src/kubernetes-$KUBERNETES_VERSION
  mkdir -p "$work" "$dest"
  local staging_version=v0.${KUBERNETES_VERSION#v1.}
  (
    cd "$work"
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "module turnout.dev/testbin/kubernetes"
      echo
      echo "go $(sed -n 's/^go //p' "$gomod")"
      echo
      echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
      echo
      echo "replace ("
      sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$gomod"
      echo ")"
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    log "kubernetes $KUBERNETES_VERSION: resolving modules"
    go mod tidy -e >/dev/null 2>&1 || true
    go mod download
    local pkg=k8s.io/component-base/version
    local ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1"
    ldflags+=" -X $pkg.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
    for bin in "${bins[@]}"; do
      [ -x "$dest/$bin" ] && continue
      with_progress "$bin $KUBERNETES_VERSION" go build -trimpath -ldflags "$ldflags" -o "$dest/$bin.tmp" "k8s.io/kubernetes/cmd/$bin"
      mv "$dest/$bin.tmp" "$dest/$bin"
    done
  ) >&2
  echo "KUBE_BIN=$dest"
}

# etcd's server/go.mod points at ../ directories; a wrapper module requires it at its version.
build_etcd() {
  local dest=$cache/bin/etcd/$ETCD_VERSION
  lock_component etcd
  if all_present "$dest" etcd; then echo "ETCD_BIN=$dest"; return; fi
  local work=$cache/src/etcd-$ETCD_VERSION
  mkdir -p "$work" "$dest"
  (
    cd "$work"
    local gomod
    gomod=$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "module turnout.dev/testbin/etcd"
      echo
      echo "go $(sed -n 's/^go //p' "$gomod")"
      echo
      echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
      echo
      echo "replace ("
      for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
        echo "	go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"
      done
      echo ")"
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    log "etcd $ETCD_VERSION: resolving modules"
    go mod tidy -e >/dev/null 2>&1 || true
    go mod download
    with_progress "etcd $ETCD_VERSION" go build -trimpath -ldflags "-s -w" -o "$dest/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$dest/etcd.tmp" "$dest/etcd"
  ) >&2
  echo "ETCD_BIN=$dest"
}

# kwok's and helm's modules have no local replaces: `go install pkg@version` works as is.
build_kwok() {
  local dest=$cache/bin/kwok/$KWOK_VERSION
  lock_component kwok
  if all_present "$dest" kwok kwokctl; then echo "KWOK_BIN=$dest"; return; fi
  mkdir -p "$dest"
  for bin in kwok kwokctl; do
    [ -x "$dest/$bin" ] && continue
    GOBIN=$dest with_progress "$bin $KWOK_VERSION" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/$bin@$KWOK_VERSION" >&2
  done
  echo "KWOK_BIN=$dest"
}

build_helm() {
  local dest=$cache/bin/helm/$HELM_VERSION
  lock_component helm
  if all_present "$dest" helm; then echo "HELM_BIN=$dest"; return; fi
  mkdir -p "$dest"
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  GOBIN=$dest with_progress "helm $HELM_VERSION" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  echo "HELM_BIN=$dest"
}

# The module zip holds the released CRDs; `go mod download` fetches it through the Go module proxy.
fetch_gateway_api() {
  local dest=$cache/crds/gateway-api/$GATEWAY_API_VERSION
  lock_component gateway-api
  if [ -s "$dest/gateway.networking.k8s.io_httproutes.yaml" ]; then echo "GATEWAY_API_CRDS=$dest"; return; fi
  local scratch module
  scratch=$(mktemp -d)
  # Outside any module, so nothing's go.mod is touched.
  module=$(cd "$scratch" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rmdir "$scratch"
  [ -d "$module/config/crd/standard" ] || { log "gateway-api $GATEWAY_API_VERSION: no config/crd/standard in $module"; return 1; }
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp"
  cp "$module"/config/crd/standard/*.yaml "$dest.tmp/"
  chmod -R u+w "$dest.tmp"  # the module cache is read-only
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
  log "gateway-api $GATEWAY_API_VERSION: CRDs in $dest"
  echo "GATEWAY_API_CRDS=$dest"
}

# The package's own binary, statically linked Go: `apt-get download` fetches the .deb into a scratch
# directory (no root needed, nothing installed) and `dpkg-deb -x` unpacks it there.
fetch_prometheus() {
  local dest=$cache/bin/prometheus/$PROMETHEUS_VERSION
  lock_component prometheus
  if all_present "$dest" prometheus; then echo "PROMETHEUS_BIN=$dest"; return; fi
  local scratch
  scratch=$(mktemp -d)
  (cd "$scratch" && apt-get download -q "prometheus=$PROMETHEUS_VERSION") >&2
  dpkg-deb -x "$scratch"/prometheus_*.deb "$scratch/root"
  mkdir -p "$dest"
  local packaged=usr/bin/prometheus # where the package puts the binary, under the unpacked root
  cp "$scratch/root/$packaged" "$dest/prometheus.tmp"
  mv "$dest/prometheus.tmp" "$dest/prometheus"
  rm -rf "$scratch"
  log "prometheus $PROMETHEUS_VERSION: unpacked to $dest"
  echo "PROMETHEUS_BIN=$dest"
}

# Holds a per-component lock until the next call or exit: two runs on a cold cache (two test
# sessions at once) would otherwise write the same files.
lock_component() {
  mkdir -p "$cache"
  exec 9>"$cache/.lock-$1"
  if ! flock -n 9; then
    log "$1: waiting for another build of it to finish"
    flock 9
  fi
}

all_present() {
  local dir=$1; shift
  for bin in "$@"; do [ -x "$dir/$bin" ] || return 1; done
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kwok kube helm gateway-api prometheus)
for c in "${components[@]}"; do
  case $c in
    kube) build_kube ;;
    etcd) build_etcd ;;
    kwok) build_kwok ;;
    helm) build_helm ;;
    gateway-api) fetch_gateway_api ;;
    prometheus) fetch_prometheus ;;
    *) echo "unknown component: $c (kube etcd kwok helm gateway-api prometheus)" >&2; exit 2 ;;
  esac
done
