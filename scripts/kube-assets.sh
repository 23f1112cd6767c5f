#!/usr/bin/env bash
# Provides kube-apiserver and etcd for the cluster test suite (envtest layout: one folder holding
# both binaries, named by KUBEBUILDER_ASSETS). Nothing is downloaded but Go modules and Debian
# packages: kube-apiserver is built from the k8s.io/kubernetes module; etcd is Debian's etcd-server
# when that kube-apiserver accepts it, else it is built from the go.etcd.io/etcd/server/v3 module.
#
#   bash scripts/kube-assets.sh               # build or reuse, print the folder on the last line
#   eval "$(bash scripts/kube-assets.sh --env)"   # also export KUBEBUILDER_ASSETS in this shell
#
# Reuses $KUBEBUILDER_ASSETS when it already holds both binaries (e.g. from setup-envtest).
# Cache: ${XATTN_KUBE_ASSETS_CACHE:-~/.cache/xattn/kube-assets}/<version>/, plus a `current` link
# that test/cluster finds when KUBEBUILDER_ASSETS is unset.
set -euo pipefail

KUBE_VERSION="${XATTN_KUBE_VERSION:-1.34.4}"
# etcd built from go.etcd.io/etcd/server/v3 when Debian's is missing or too old.
ETCD_VERSION="${XATTN_ETCD_VERSION:-3.6.5}"
# Debian bookworm's etcd-server 3.4.23 serves kube-apiserver 1.34 (CRDs, CEL, SSA, watches: the
# cluster suite exercises all of them). Set XATTN_ETCD_MIN_DEBIAN=3.5 to build etcd instead.
ETCD_MIN_DEBIAN="${XATTN_ETCD_MIN_DEBIAN:-3.4}"
CACHE_ROOT="${XATTN_KUBE_ASSETS_CACHE:-$HOME/.cache/xattn/kube-assets}"
OUT="$CACHE_ROOT/$KUBE_VERSION"
PRINT_ENV=0
[[ "${1:-}" == "--env" ]] && PRINT_ENV=1

log() { echo "kube-assets: $*" >&2; }
die() { echo "kube-assets: ERROR: $*" >&2; exit 1; }
finish() {
  if ((PRINT_ENV)); then echo "export KUBEBUILDER_ASSETS='$1'"; else echo "$1"; fi
  exit 0
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
  log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  finish "$KUBEBUILDER_ASSETS"
fi

mkdir -p "$OUT"
SECONDS=0

build_kube_apiserver() {
  command -v go >/dev/null || die "go is not installed; it is needed to build kube-apiserver $KUBE_VERSION"
  local work="$CACHE_ROOT/build-kubernetes-$KUBE_VERSION"
  mkdir -p "$work"
  export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
  log "fetching k8s.io/kubernetes@v$KUBE_VERSION go.mod"
  local gomod
  gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION"
  # k8s.io/kubernetes points its staging modules at ./staging/...; a consumer must pin each to the
  # matching published v0.x tag instead, or `go` cannot resolve them.
  local staging_version="v0.${KUBE_VERSION#*.}"
  {
    echo "module xattn.local/kubeassets"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes v$KUBE_VERSION"
    echo
    grep -E '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" |
      awk -v v="$staging_version" '{ printf "replace %s => %s %s\n", $1, $1, v }'
  } >"$work/go.mod"
  cat >"$work/tools.go" <<'EOF'
//go:build tools

package kubeassets

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
EOF
  log "building kube-apiserver v$KUBE_VERSION (slow: many minutes on 2 cores; log: $work/build.log)"
  (cd "$work" && go mod tidy -e >"$work/build.log" 2>&1 &&
    go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(minor_of "$KUBE_VERSION")" \
      -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >>"$work/build.log" 2>&1) ||
    { tail -30 "$work/build.log" >&2; die "kube-apiserver build failed (see $work/build.log)"; }
  mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
  log "kube-apiserver built in ${SECONDS}s"
}

minor_of() { local m="${1#*.}"; echo "${m%%.*}"; }
version_at_least() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" == "$2" ]]; }

debian_etcd() {
  if ! [[ -x /usr/bin/etcd ]]; then
    command -v apt-get >/dev/null || return 1
    [[ $(id -u) == 0 ]] || { log "not root: cannot apt-get install etcd-server"; return 1; }
    log "installing Debian etcd-server"
    (apt-get install -y -qq etcd-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq etcd-server; }) >&2 || return 1
    # The package starts a system etcd on :2379; the suite runs its own, so stop that one.
    (systemctl stop etcd || service etcd stop) >/dev/null 2>&1 || true
  fi
  local v
  v=$(/usr/bin/etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')
  [[ -n "$v" ]] || return 1
  if ! version_at_least "$v" "$ETCD_MIN_DEBIAN"; then
    log "Debian etcd $v is older than the $ETCD_MIN_DEBIAN this kube-apiserver needs"
    return 1
  fi
  ln -sf /usr/bin/etcd "$OUT/etcd"
  log "using Debian etcd $v"
}

build_etcd() {
  command -v go >/dev/null || die "go is not installed; it is needed to build etcd $ETCD_VERSION"
  local work="$CACHE_ROOT/build-etcd-$ETCD_VERSION"
  mkdir -p "$work"
  export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
  printf 'module xattn.local/etcdassets\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" >"$work/go.mod"
  printf '//go:build tools\n\npackage etcdassets\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$work/tools.go"
  log "building etcd v$ETCD_VERSION (log: $work/build.log)"
  (cd "$work" && go mod tidy -e >"$work/build.log" 2>&1 &&
    go build -trimpath -ldflags '-s -w' -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 >>"$work/build.log" 2>&1) ||
    { tail -30 "$work/build.log" >&2; die "etcd build failed (see $work/build.log)"; }
  rm -f "$OUT/etcd"
  mv "$OUT/etcd.tmp" "$OUT/etcd"
}

[[ -x "$OUT/kube-apiserver" ]] || build_kube_apiserver
[[ -x "$OUT/etcd" ]] || debian_etcd || build_etcd
ln -sfn "$OUT" "$CACHE_ROOT/current"
log "ready in ${SECONDS}s: $("$OUT/kube-apiserver" --version 2>/dev/null), $("$OUT/etcd" --version 2>/dev/null | head -1)"
finish "$OUT"
