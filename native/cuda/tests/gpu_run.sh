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
  # Full check log to $out; the console gets failures (with their case and kernel lines) and the summary.
  timeout 240 "$bin/xattn_cuda_check" >"$out/check.log" 2>&1
  check_rc=$?
  [ $check_rc = 0 ] || rc=1
  awk '/^device|passed, /{print} /^case/{c=$0; shown=0} /^ kernels/{k=$0; shown=0}
       /FAIL|EXCEPTION/{if (!shown) {print c; print k; shown=1} print}' "$out/check.log" | head -80
  if [ $check_rc = 3 ] || [ $check_rc = 124 ]; then
    echo "check hung (rc $check_rc): skipping the benchmarks"
  else
    timeout 150 "$bin/xattn_cuda_bench" 10 2>&1 | tee "$out/bench.log" || rc=1
    # XATTN_CUDNN=0 skips the baseline (when only our kernels changed since the last measured run).
    if [ "${XATTN_CUDNN:-1}" = 1 ]; then
      timeout 150 python3 native/cuda/tests/cudnn_baseline.py 10 2>&1 | tee "$out/cudnn.log" || rc=1
    fi
  fi
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
print(f"{'shape':34} {'path':>8} {'fwd ours':>8} {'cudnn':>6} {'ratio':>5} {'f+b ours':>8} {'cudnn':>6} {'ratio':>5}")
for r in ours:
    c = cudnn.get(r["shape"], {})
    cf, cb = c.get("cudnn_fwd_tflops", float("nan")), c.get("cudnn_fwdbwd_tflops", float("nan"))
    print(f"{r['shape']:34} {r.get('path', '?'):>8} {r['ours_fwd_tflops']:8.1f} {cf:6.1f} {r['ours_fwd_tflops'] / cf:5.2f}"
          f" {r['ours_fwdbwd_tflops']:8.1f} {cb:6.1f} {r['ours_fwdbwd_tflops'] / cb:5.2f}")
PY
fi
if [ "${XATTN_NCU:-0}" = 1 ] && [ "${check_rc:-1}" = 0 ]; then  # one profile of each sm90 kernel, first shape
  ncu_bin=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  for k in fwd_sm90 bwd_sm90; do
    timeout 120 "${ncu_bin:-ncu}" --kernel-name "regex:$k" --launch-skip 1 --launch-count 1 --section SpeedOfLight \
      --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy \
      --section WarpStateStats --section SchedulerStats --section InstructionStats \
      "$bin/xattn_cuda_bench" 1 0 >"$out/ncu_$k.log" 2>&1 || rc=1
    grep -E "Duration|Throughput|Pipe Util|Issued Ipc|Registers Per|Achieved Occ|No Eligible|Stall" \
      "$out/ncu_$k.log" | head -24
  done
fi
if [ "$what" = nccl ] || [ "$what" = all ]; then
  timeout 120 "$bin/xattn_nccl_check" 2 2>&1 | tee "$out/nccl.log" || rc=1
fi
if [ "${XATTN_SANITIZE:-0}" = 1 ]; then
  XATTN_CHECK_EVERY=5 timeout 150 compute-sanitizer --tool memcheck "$bin/xattn_cuda_check" >"$out/memcheck.log" 2>&1 || rc=1
  tail -5 "$out/memcheck.log"
fi
exit $rc
