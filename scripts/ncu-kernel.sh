#!/usr/bin/env bash
# On the GPU machine: Nsight Compute on one launch of a kernel, for the stall reasons and pipe activity
# behind a timing (native/cuda/NOTES.md). Prints the duration, issue activity, busiest pipes and top stall
# reasons, and writes ${OUT:-/tmp/ncu}/NAME.tar.xz (one file: the device machine returns only so many) with
# NAME.ncu-rep, NAME-details.csv (every section's metrics), NAME-raw.csv (every metric) and NAME-source.csv
# (per-SASS-line samples).
#   bash scripts/ncu-kernel.sh NAME KERNEL_REGEX SHAPE [BENCH] [PATH]     (a kernel of xattn_cuda_bench)
#   bash scripts/ncu-kernel.sh NAME KERNEL_REGEX -- COMMAND...            (any program, e.g. cuDNN's)
#   e.g. bash scripts/ncu-kernel.sh fwd-d64 fwd_sm90 16:16:64:1024:65536 build/exp/main/bench sm90
# NCU_SKIP launches matching the regex are skipped first (default 2: the bench's untimed runs).
# Clocks stay as they are (--clock-control none: ncu would otherwise lock them below the boost clock).
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,10p "$0"; exit 2; }
name=$1 regex=$2
shift 2
if [ "$1" = -- ]; then
  shift
  cmd=("$@")
else
  shape=$1 bench=${2:-build/gpu/xattn_cuda_bench} path=${3:-sm90}
  [ -x "$bench" ] || { echo "no kernel bench at $bench: build it (kernel-variants.sh) and carry it"; exit 1; }
  cmd=("$bench" 3 0 "$shape" "$path")
fi
out=${OUT:-/tmp/ncu}
mkdir -p "$out"
command -v ncu >/dev/null || { echo "ncu is not on the PATH here"; exit 1; }
ncu --clock-control none -k "regex:$regex" --launch-skip "${NCU_SKIP:-2}" --launch-count 1 --set full \
  --import-source no -f -o "$out/$name" "${cmd[@]}" > "$out/$name-ncu.log" 2>&1 || { tail -20 "$out/$name-ncu.log"; exit 1; }
ncu --import "$out/$name.ncu-rep" --page details --csv > "$out/$name-details.csv"
ncu --import "$out/$name.ncu-rep" --page raw --csv > "$out/$name-raw.csv"
ncu --import "$out/$name.ncu-rep" --page source --csv --print-source sass > "$out/$name-source.csv" || true
python3 "$(dirname "$0")/ncu-summary.py" "$out/$name-details.csv" "$out/$name-raw.csv"
parts=("$name.ncu-rep" "$name-details.csv" "$name-raw.csv" "$name-source.csv" "$name-ncu.log")
tar -C "$out" -cJf "$out/$name.tar.xz" "${parts[@]}" && (cd "$out" && rm -f "${parts[@]}")
echo "wrote $out/$name.tar.xz"
