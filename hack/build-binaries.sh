#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules, pinned in hack/versions.env,
# into a cache keyed by version outside the clone:
#   ${TURNOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/turnout}/bin/<component>/<version>/<binary>
# and copies the Gateway API's standard CRDs from its module (nothing to build) to
#   .../turnout/crds/gateway-api/<version>/*.yaml
# and unpacks Prometheus from the Debian package of that version (apt-get download; nothing is
# installed on the system) to .../turnout/bin/prometheus/<version>/prometheus
# The real node's parts (component `node`, not in the default set): kubelet, kube-proxy and the fake
# GPU device plugin from the same wrapper module way as kube (bin/kubernetes-node/<version>/), the CNI
# plugins from their module (bin/cni-plugins/<version>/), containerd and runc from Debian's packages,
# unpacked like Prometheus (bin/containerd/<version>/, bin/runc/<version>/).
# A second run with the cache present only checks that the files are there.
# Prints the directory of each component on stdout as NAME=PATH lines; progress goes to stderr.
#
# Usage: hack/build-binaries.sh [component ...]
#        (default: all but node; components: kube etcd kwok helm gateway-api prometheus node
#         node-kube cni containerd iptables)
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
  (
    cd "$work"
    build_kube_commands kubernetes "$dest" "${bins[@]}"
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

# The package's own binary, statically linked Go (see unpack_deb: nothing is installed).
fetch_prometheus() {
  local dest=$cache/bin/prometheus/$PROMETHEUS_VERSION
  lock_component prometheus
  if all_present "$dest" prometheus; then echo "PROMETHEUS_BIN=$dest"; return; fi
  unpack_deb prometheus "$PROMETHEUS_VERSION" usr/bin "$dest" prometheus
  echo "PROMETHEUS_BIN=$dest"
}

# In the current directory, a wrapper module $1 (requiring k8s.io/kubernetes, each staging module
# pinned to its twin) whose tools.go imports the commands $3...; builds each one missing in $2.
build_kube_commands() {
  local module=$1 dest=$2; shift 2
  local gomod staging_version=v0.${KUBERNETES_VERSION#v1.}
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module turnout.dev/testbin/$module"
    echo
    echo "go $(sed -n 's/^go //p' "$gomod")"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$gomod"
    echo ")"
  } > go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for bin in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$bin"; done
    printf ')\n'
  } > tools.go
  log "$module $KUBERNETES_VERSION: resolving modules"
  go mod tidy -e >/dev/null 2>&1 || true
  go mod download
  local ldflags
  ldflags=$(kube_ldflags)
  for bin in "$@"; do
    [ -x "$dest/$bin" ] && continue
    with_progress "$bin $KUBERNETES_VERSION" go build -trimpath -ldflags "$ldflags" -o "$dest/$bin.tmp" "k8s.io/kubernetes/cmd/$bin"
    mv "$dest/$bin.tmp" "$dest/$bin"
  done
}

kube_ldflags() {
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1"
  ldflags+=" -X $pkg.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  echo "$ldflags"
}

# The real node's kubelet and kube-proxy, the fake GPU device plugin (hack/testground/fakegpu) and
# the pause image's binary (hack/testground/pause),
# in a wrapper module of their own: adding them to kube's would rebuild its four binaries.
build_node_kube() {
  local dest=$cache/bin/kubernetes-node/$KUBERNETES_VERSION
  local bins=(kubelet kube-proxy)
  lock_component kubernetes-node
  if all_present "$dest" "${bins[@]}" fakegpu pause; then echo "NODE_KUBE_BIN=$dest"; return; fi
  local work=$cache/src/kubernetes-node-$KUBERNETES_VERSION
  mkdir -p "$work/fakegpu" "$work/pause" "$dest"
  (
    cd "$work"
    cp "$here/testground/fakegpu/main.go" fakegpu/main.go
    cp "$here/testground/pause/main.go" pause/main.go
    build_kube_commands kubernetes-node "$dest" "${bins[@]}"
    for bin in fakegpu pause; do
      with_progress "$bin" go build -trimpath -ldflags "-s -w" -o "$dest/$bin.tmp" "./$bin"
      mv "$dest/$bin.tmp" "$dest/$bin"
    done
  ) >&2
  echo "NODE_KUBE_BIN=$dest"
}

# The CNI plugins' module has no local replaces: `go install pkg@version` works as is.
build_cni() {
  local dest=$cache/bin/cni-plugins/$CNI_PLUGINS_VERSION
  local bins=(bridge host-local loopback portmap)
  lock_component cni-plugins
  if all_present "$dest" "${bins[@]}"; then echo "CNI_BIN=$dest"; return; fi
  mkdir -p "$dest"
  local module=github.com/containernetworking/plugins
  local -A dirs=([bridge]=main [loopback]=main [host-local]=ipam [portmap]=meta)
  for bin in "${bins[@]}"; do
    [ -x "$dest/$bin" ] && continue
    GOBIN=$dest with_progress "$bin $CNI_PLUGINS_VERSION" go install -trimpath -ldflags "-s -w" "$module/plugins/${dirs[$bin]}/$bin@$CNI_PLUGINS_VERSION" >&2
  done
  echo "CNI_BIN=$dest"
}

# Unpacks Debian package $1 at version $2 into a scratch directory (`apt-get download`, `dpkg-deb -x`:
# no privileges needed, nothing installed) and copies the binaries $5..., found in the package's
# directory $3, to $4.
unpack_deb() {
  local package=$1 version=$2 packaged=$3 dest=$4; shift 4
  local scratch
  scratch=$(mktemp -d)
  (cd "$scratch" && apt-get download -q "$package=$version") >&2
  dpkg-deb -x "$scratch"/"$package"_*.deb "$scratch/unpacked"
  mkdir -p "$dest"
  for bin in "$@"; do
    cp "$scratch/unpacked/$packaged/$bin" "$dest/$bin.tmp"
    mv "$dest/$bin.tmp" "$dest/$bin"
  done
  rm -rf "$scratch"
  log "$package $version: unpacked to $dest"
}

fetch_containerd() {
  local dest=$cache/bin/containerd/$CONTAINERD_VERSION runc_dest=$cache/bin/runc/$RUNC_VERSION
  lock_component containerd
  all_present "$dest" containerd containerd-shim-runc-v2 ctr ||
    unpack_deb containerd "$CONTAINERD_VERSION" usr/bin "$dest" containerd containerd-shim-runc-v2 ctr
  all_present "$runc_dest" runc || unpack_deb runc "$RUNC_VERSION" usr/sbin "$runc_dest" runc
  echo "CONTAINERD_BIN=$dest"
  echo "RUNC_BIN=$runc_dest"
}

# kube-proxy (iptables mode) and the kubelet run iptables: Debian's, unpacked with the two libraries
# it needs beyond those of a minimal system, behind wrappers in bin/ that find them (nothing installed).
fetch_iptables() {
  local dest=$cache/bin/iptables/$IPTABLES_VERSION
  local bins=(iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore)
  lock_component iptables
  if all_present "$dest/bin" "${bins[@]}"; then echo "IPTABLES_BIN=$dest/bin"; return; fi
  local scratch
  scratch=$(mktemp -d)
  (cd "$scratch" && apt-get download -q "iptables=$IPTABLES_VERSION" "libip6tc2=$IPTABLES_VERSION" \
    "libnftnl11=$LIBNFTNL_VERSION") >&2
  rm -rf "$dest"
  mkdir -p "$dest/bin"
  for deb in "$scratch"/*.deb; do dpkg-deb -x "$deb" "$dest/unpacked"; done
  rm -rf "$scratch"
  # The libraries' directory is the architecture's (usr/lib/<multiarch triplet>): found, not named.
  local lib
  lib=$(dirname "$(find "$dest/unpacked/usr/lib" -name 'libip6tc.so.2*' -print -quit)")
  for bin in "${bins[@]}"; do
    cat > "$dest/bin/$bin.tmp" <<SH
#!/bin/bash
export LD_LIBRARY_PATH=$lib XTABLES_LIBDIR=$lib/xtables
exec -a $bin $dest/unpacked/usr/sbin/xtables-\${TURNOUT_IPTABLES_BACKEND:-legacy}-multi "\$@"
SH
    chmod +x "$dest/bin/$bin.tmp"
    mv "$dest/bin/$bin.tmp" "$dest/bin/$bin"
  done
  log "iptables $IPTABLES_VERSION: unpacked to $dest"
  echo "IPTABLES_BIN=$dest/bin"
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
    node) build_node_kube; build_cni; fetch_containerd; fetch_iptables ;;
    iptables) fetch_iptables ;;
    node-kube) build_node_kube ;;
    cni) build_cni ;;
    containerd) fetch_containerd ;;
    *) echo "unknown component: $c (kube etcd kwok helm gateway-api prometheus node node-kube cni containerd iptables)" >&2; exit 2 ;;
  esac
done
