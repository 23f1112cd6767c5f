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
ours, cudnn = [], {}
for name in ("bench.log", "cudnn.log"):
    p = d / name
    for line in p.read_text().splitlines() if p.exists() else []:
        if line.startswith("{"):
            r = json.loads(line)
            (ours.append(r) if "ours_fwd_tflops" in r else cudnn.__setitem__(r["shape"], r))
print(f"{'shape':34} {'mt':>2} {'fwd ours':>8} {'cudnn':>6} {'ratio':>5} {'f+b ours':>8} {'cudnn':>6} {'ratio':>5}")
for r in ours:
    c = cudnn.get(r["shape"], {})
    cf, cb = c.get("cudnn_fwd_tflops", float("nan")), c.get("cudnn_fwdbwd_tflops", float("nan"))
    print(f"{r['shape']:34} {r.get('fwd_mtiles', 0):2} {r['ours_fwd_tflops']:8.1f} {cf:6.1f} {r['ours_fwd_tflops'] / cf:5.2f}"
          f" {r['ours_fwdbwd_tflops']:8.1f} {cb:6.1f} {r['ours_fwdbwd_tflops'] / cb:5.2f}")
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
