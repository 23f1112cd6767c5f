#!/usr/bin/env bash
# Provides the real `helm` for the chart tests. Nothing is downloaded but Go modules: helm is built
# from the helm.sh/helm/v3 module (the way its own Makefile does: -trimpath, stripped, version and
# default Kubernetes version stamped in) and cached outside the repository.
#
#   bash scripts/helm-assets.sh                 # build or reuse; print the binary's path last
#   eval "$(bash scripts/helm-assets.sh --env)" # also export XATTN_HELM in this shell
#
# Reuses $XATTN_HELM when it already names an executable.
# Cache: ${XATTN_HELM_CACHE:-~/.cache/xattn/helm}/<version>/helm, plus a `current` link that
# test/charts finds when XATTN_HELM is unset.
set -euo pipefail

# v3.19 is the last line built on the Kubernetes 1.34 libraries, the version of the test API server.
HELM_VERSION="${XATTN_HELM_VERSION:-3.19.5}"
CACHE_ROOT="${XATTN_HELM_CACHE:-$HOME/.cache/xattn/helm}"
OUT="$CACHE_ROOT/$HELM_VERSION"
ASSETS_NAME=helm-assets
# shellcheck source=scripts/assets-lib.sh
source "$(dirname "$0")/assets-lib.sh"

if [[ -n "${XATTN_HELM:-}" && -x "$XATTN_HELM" ]]; then
  log "using XATTN_HELM=$XATTN_HELM"
  finish XATTN_HELM "$XATTN_HELM"
fi

build_helm() {
  command -v go >/dev/null || die "go is not installed; it is needed to build helm $HELM_VERSION"
  local work="$CACHE_ROOT/build-$HELM_VERSION"
  mkdir -p "$work" "$OUT"
  export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
  printf 'module xattn.local/helmassets\n\ngo 1.24.0\n\nrequire helm.sh/helm/v3 v%s\n' "$HELM_VERSION" >"$work/go.mod"
  printf '//go:build tools\n\npackage helmassets\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n' >"$work/tools.go"
  log "building helm v$HELM_VERSION (a few minutes on 2 cores; log: $work/build.log)"
  (cd "$work" && go mod tidy -e >"$work/build.log" 2>&1) || { tail -30 "$work/build.log" >&2; die "go mod tidy failed"; }
  # As helm's Makefile: the default Kubernetes version (for .Capabilities and lint) is client-go's + 1.x.
  local cg major minor
  cg=$(cd "$work" && go list -f '{{.Version}}' -m k8s.io/client-go)
  cg="${cg#v}"
  major=$((${cg%%.*} + 1))
  minor="${cg#*.}"
  minor="${minor%%.*}"
  local x="-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  x+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  x+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  (cd "$work" && go build -trimpath -ldflags "-s -w $x" -o "$OUT/helm.tmp" helm.sh/helm/v3/cmd/helm >>"$work/build.log" 2>&1) ||
    { tail -30 "$work/build.log" >&2; die "helm build failed (see $work/build.log)"; }
  mv "$OUT/helm.tmp" "$OUT/helm"
  log "helm built in ${SECONDS}s"
}

SECONDS=0
[[ -x "$OUT/helm" ]] || build_helm
ln -sfn "$OUT" "$CACHE_ROOT/current"
log "ready: $("$OUT/helm" version --short 2>/dev/null)"
finish XATTN_HELM "$OUT/helm"
