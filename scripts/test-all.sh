#!/usr/bin/env bash
# The whole test suite: unit and multi-process tests (vitest), then the suites that need real
# services (kube-apiserver + etcd), after fetching or building what they need (cached).
set -euo pipefail
cd "$(dirname "$0")/.."

[ -f build/native/Release/xattn.node ] || npm run build:native

echo "== services for the cluster suites (cached after the first run)"
eval "$(bash scripts/kube-assets.sh --env)"
eval "$(bash scripts/helm-assets.sh --env)"
eval "$(bash scripts/prometheus-assets.sh --env)"

echo "== typecheck + unit and multi-process tests"
npm test

echo "== suites against a real kube-apiserver"
npm run test:cluster

echo "== chart (real helm + kube-apiserver) and Prometheus end-to-end suites"
npm run test:charts
