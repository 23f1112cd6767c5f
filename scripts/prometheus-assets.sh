#!/usr/bin/env bash
# Provides a real Prometheus server for the end-to-end metrics suite (test/e2e): Debian's
# `prometheus` package, installed with apt-get when missing. The suite starts its own server on
# loopback with a generated config; the one the package may start as a system service is stopped.
#
#   bash scripts/prometheus-assets.sh                 # install or reuse; print the binary's path last
#   eval "$(bash scripts/prometheus-assets.sh --env)" # also export XATTN_PROMETHEUS in this shell
#
# Reuses $XATTN_PROMETHEUS when it already names an executable.
set -euo pipefail

ASSETS_NAME=prometheus-assets
# shellcheck source=scripts/assets-lib.sh
source "$(dirname "$0")/assets-lib.sh"

if [[ -n "${XATTN_PROMETHEUS:-}" && -x "$XATTN_PROMETHEUS" ]]; then
  log "using XATTN_PROMETHEUS=$XATTN_PROMETHEUS"
  finish XATTN_PROMETHEUS "$XATTN_PROMETHEUS"
fi

if ! [[ -x /usr/bin/prometheus ]]; then
  command -v apt-get >/dev/null || die "no /usr/bin/prometheus and no apt-get: install Prometheus and set XATTN_PROMETHEUS"
  [[ $(id -u) == 0 ]] || die "not root: cannot apt-get install prometheus (install it, or set XATTN_PROMETHEUS)"
  log "installing Debian's prometheus package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends prometheus >&2 || die "apt-get install prometheus failed"
  # The package may start a system server on :9090; the suite runs its own, so stop that one.
  (systemctl stop prometheus || service prometheus stop) >/dev/null 2>&1 || true
fi

log "ready: $(/usr/bin/prometheus --version 2>&1 | head -1)"
finish XATTN_PROMETHEUS /usr/bin/prometheus
