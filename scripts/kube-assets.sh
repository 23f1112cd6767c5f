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
# etcd built from the go.etcd.io/etcd/server/v3 module when Debian's is too old.
ETCD_VERSION="${XATTN_ETCD_VERSION:-3.6.5}"
# kube-apiserver 1.34 serves watches from its cache and needs etcd's progress notifications to
# bring an idle cache up to date; etcd before 3.5.13 (3.4.31) gets them wrong, and such a watch
# fails with "Too large resource version". Debian bookworm ships 3.4.23: it starts, then watches
# of quiet resources break. So Debian's etcd is used only from this version on.
ETCD_MIN="${XATTN_ETCD_MIN:-3.5.13}"
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

etcd_version() { "$1" --version 2>/dev/null | sed -n 's/^etcd Version: //p'; }

debian_etcd() {
  command -v apt-cache >/dev/null || return 1
  local candidate
  candidate=$(apt-cache policy etcd-server 2>/dev/null | sed -n 's/^ *Candidate: //p')
  if [[ -z "$candidate" || "$candidate" == "(none)" ]] && [[ $(id -u) == 0 ]]; then
    apt-get update -qq >&2 || true
    candidate=$(apt-cache policy etcd-server 2>/dev/null | sed -n 's/^ *Candidate: //p')
  fi
  candidate="${candidate%%-*}"
  if [[ -z "$candidate" || "$candidate" == "(none)" ]] || ! version_at_least "$candidate" "$ETCD_MIN"; then
    log "Debian etcd-server ${candidate:-(none)} is older than the $ETCD_MIN kube-apiserver $KUBE_VERSION needs; building etcd instead"
    return 1
  fi
  if ! [[ -x /usr/bin/etcd ]]; then
    [[ $(id -u) == 0 ]] || { log "not root: cannot apt-get install etcd-server"; return 1; }
    log "installing Debian etcd-server $candidate"
    apt-get install -y -qq etcd-server >&2 || return 1
    # The package starts a system etcd on :2379; the suite runs its own, so stop that one.
    (systemctl stop etcd || service etcd stop) >/dev/null 2>&1 || true
  fi
  version_at_least "$(etcd_version /usr/bin/etcd)" "$ETCD_MIN" || return 1
  ln -sf /usr/bin/etcd "$OUT/etcd"
  log "using Debian etcd $(etcd_version /usr/bin/etcd)"
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
if ! [[ -x "$OUT/etcd" ]] || ! version_at_least "$(etcd_version "$OUT/etcd")" "$ETCD_MIN"; then
  rm -f "$OUT/etcd"
  debian_etcd || build_etcd
fi
ln -sfn "$OUT" "$CACHE_ROOT/current"
log "ready in ${SECONDS}s: $("$OUT/kube-apiserver" --version 2>/dev/null), $("$OUT/etcd" --version 2>/dev/null | head -1)"
finish "$OUT"
