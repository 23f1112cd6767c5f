#!/usr/bin/env bash
# On a GPU machine without node_modules: builds the addon with CUDA (plus the standalone kernel
# checks), then runs the GPU checks and, with `bench`, the GPU benchmark. Expects Node from
# ../shared/device (source .device/setup.sh first) and the bundles from `npm run bundle` in dist/.
#   bash scripts/gpu-device.sh [test|bench|train|all]   logs and results go to ${OUT:-/tmp/xattn-gpu}
#   test: engine checks + a GPU xattn run; bench: kernels vs cuDNN + 2-GPU distributed (add --scaling via
#   XATTN_SCALING=1); train: xattn_nn_check, examples/train-gpu.yaml, bench:train, bench:memory;
#   all: xattn_cuda_check, test and bench.
set -uo pipefail
what=${1:-all}
out=${OUT:-/tmp/xattn-gpu}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
# The bundles this mode runs (carrying only those keeps a call under the 64 MiB limit).
case "$what" in
  test) bundles="test-gpu xattn" ;;
  bench) bundles="bench-gpu" ;;
  train) bundles="xattn bench-train bench-memory" ;;
  all) bundles="test-gpu xattn bench-gpu" ;;
  *) echo "unknown mode '$what': expected test, bench, train or all"; exit 2 ;;
esac
for b in $bundles; do
  [ -f "dist/$b.mjs" ] || { echo "dist/$b.mjs is missing: run 'npm run bundle' where node_modules exists and carry it"; exit 1; }
done
nvidia-smi -L | tee "$out/device.txt"
# A prebuilt CUDA addon (built elsewhere into build/gpu and carried along) is used when it loads here.
if [ -f build/gpu/Release/xattn.node ] && node -e "process.exit(require('./build/gpu/Release/xattn.node').cudaDeviceCount() > 0 ? 0 : 1)" 2>/dev/null; then
  echo "== using the prebuilt CUDA addon in build/gpu"
  bin=build/gpu
else
  echo "== building the addon with CUDA"
  bin=build/native
  if ! { cmake -S native -B "$bin" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/$bin/Release" -DCMAKE_JS_INC="${NODE_INCLUDE_DIR:?source .device/setup.sh first}" \
          -DXATTN_CUDA=ON -DXATTN_CUDA_CHECKS=ON -DCMAKE_CUDA_ARCHITECTURES="${XATTN_CUDA_ARCHS:-90a}" && cmake --build "$bin" -j"$(nproc)"; } >"$out/build.log" 2>&1; then
    tail -40 "$out/build.log"
    exit 1
  fi
fi
export XATTN_ADDON="$PWD/$bin/Release/xattn.node"
rc=0
if [ "$what" = all ]; then
  echo "== kernel checks (CUDA vs CPU backend and fp64)"
  timeout 120 stdbuf -oL -eL "$bin/xattn_cuda_check" >"$out/check.log" 2>&1 || { rc=1; echo "xattn_cuda_check failed or timed out"; }
  tail -3 "$out/check.log"
fi
if [ "$what" = test ] || [ "$what" = all ]; then
  echo "== engine checks (P=1 and P=2 over NCCL vs fp64)"
  timeout 300 node dist/test-gpu.mjs 2>&1 | tee "$out/test-gpu.log" || rc=1
  echo "== xattn run on the GPUs"
  timeout 120 node dist/xattn.mjs run examples/gpu-benchmark.yaml 2>&1 | tail -12 | tee "$out/run.log" || rc=1
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  echo "== benchmark"
  XATTN_BENCH_OUT="$out" timeout 400 node dist/bench-gpu.mjs ${XATTN_SCALING:+--scaling} 2>&1 | tee "$out/bench-gpu.log" || rc=1
fi
if [ "$what" = train ]; then
  echo "== model-op checks (CUDA vs CPU)"
  timeout 120 "$bin/xattn_nn_check" >"$out/nn.log" 2>&1 || { rc=1; echo "xattn_nn_check failed or timed out"; }
  tail -1 "$out/nn.log"
  echo "== training on the GPUs"
  timeout 180 node dist/xattn.mjs run examples/train-gpu.yaml --checkpoint-dir "$out/ckpt" 2>&1 | tail -14 | tee "$out/train.log" || rc=1
  echo "== training and memory benchmarks"
  XATTN_BENCH_OUT="$out" timeout 300 node dist/bench-train.mjs 2>&1 | tee "$out/bench-train.log" || rc=1
  for q in 2048 1024; do
    XATTN_BENCH_OUT="$out" timeout 400 node dist/bench-memory.mjs --text-tokens $q 2>&1 | tee "$out/bench-memory-q$q.log" || rc=1
  done
fi
exit $rc
