#!/usr/bin/env bash
# Runs the standalone CUDA checks and benchmarks on a GPU machine (no Node needed); logs go to
# ${OUT:-/tmp/xattn-gpu}. Uses prebuilt binaries from $XATTN_CUDA_BIN (default build/cuda-check) when
# they load, else builds native/ with CMake first. Usage: gpu_run.sh kernels|nccl|all
set -uo pipefail
out=${OUT:-/tmp/xattn-gpu}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
what=${1:-kernels}
bin=${XATTN_CUDA_BIN:-build/cuda-check}
nvidia-smi -L | tee "$out/device.txt"
if [ ! -x "$bin/xattn_cuda_check" ] || ldd "$bin/xattn_cuda_check" 2>&1 | grep -q 'not found'; then
  echo "building native/ (no usable prebuilt binaries in $bin)"
  bin=/tmp/xattn-build
  (cmake -S native -B "$bin" -G Ninja -DXATTN_CUDA=ON && cmake --build "$bin" -j"$(nproc)") >"$out/build.log" 2>&1 \
    || { tail -40 "$out/build.log"; exit 1; }
fi
rc=0
if [ "$what" = kernels ] || [ "$what" = all ]; then
  timeout 300 "$bin/xattn_cuda_check" 2>&1 | tee "$out/check.log" || rc=1
  timeout 200 "$bin/xattn_cuda_bench" 10 2>&1 | tee "$out/bench.log" || rc=1
  timeout 200 python3 native/cuda/tests/cudnn_baseline.py 10 2>&1 | tee "$out/cudnn.log" || rc=1
  python3 - "$out" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
rows = {}
for name in ("bench.log", "cudnn.log"):
    for line in (d / name).read_text().splitlines() if (d / name).exists() else []:
        if line.startswith("{"):
            r = json.loads(line); rows.setdefault(r["shape"], {}).update(r)
print(f"{'shape':36} {'fwd ours':>9} {'cudnn':>7} {'ratio':>6} {'f+b ours':>9} {'cudnn':>7} {'ratio':>6}")
for s, r in rows.items():
    f = lambda k: r.get(k, float('nan'))
    print(f"{s:36} {f('ours_fwd_tflops'):9.1f} {f('cudnn_fwd_tflops'):7.1f} {f('ours_fwd_tflops')/f('cudnn_fwd_tflops'):6.2f}"
          f" {f('ours_fwdbwd_tflops'):9.1f} {f('cudnn_fwdbwd_tflops'):7.1f} {f('ours_fwdbwd_tflops')/f('cudnn_fwdbwd_tflops'):6.2f}")
PY
fi
if [ "$what" = nccl ] || [ "$what" = all ]; then
  timeout 120 "$bin/xattn_nccl_check" 2 2>&1 | tee "$out/nccl.log" || rc=1
fi
if [ "${XATTN_SANITIZE:-0}" = 1 ]; then
  XATTN_CHECK_EVERY=5 timeout 150 compute-sanitizer --tool memcheck "$bin/xattn_cuda_check" >"$out/memcheck.log" 2>&1 || rc=1
  tail -5 "$out/memcheck.log"
fi
exit $rc
