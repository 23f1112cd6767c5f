#!/usr/bin/env bash
# On the GPU machine: Nsight Compute on one launch of a kernel that xattn_cuda_bench runs, for the stall
# reasons and pipe activity behind a timing (native/cuda/NOTES.md, session 11). Writes to ${OUT:-/tmp/ncu}:
# NAME.ncu-rep, NAME-details.csv (every section's metrics) and NAME-source.csv (per-SASS-line samples).
#   bash scripts/ncu-kernel.sh NAME KERNEL_REGEX SHAPE [BENCH] [PATH]
#   e.g. bash scripts/ncu-kernel.sh fwd-d64 fwd_sm90 16:16:64:1024:65536 build/exp/main/bench sm90
# Clocks stay as they are (--clock-control none: ncu would otherwise lock them below the boost clock).
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,6p "$0"; exit 2; }
name=$1 regex=$2 shape=$3 bench=${4:-build/gpu/xattn_cuda_bench} path=${5:-sm90}
out=${OUT:-/tmp/ncu}
mkdir -p "$out"
command -v ncu >/dev/null || { echo "ncu is not on the PATH here"; exit 1; }
[ -x "$bench" ] || { echo "no kernel bench at $bench: build it (kernel-variants.sh) and carry it"; exit 1; }
# The bench runs each kernel twice untimed first; skip those, profile the third launch.
ncu --clock-control none -k "regex:$regex" --launch-skip 2 --launch-count 1 --set full -f -o "$out/$name" "$bench" 3 0 "$shape" "$path" > "$out/$name-ncu.log" 2>&1 || { tail -20 "$out/$name-ncu.log"; exit 1; }
ncu --import "$out/$name.ncu-rep" --page details --csv > "$out/$name-details.csv"
ncu --import "$out/$name.ncu-rep" --page source --csv --print-source sass > "$out/$name-source.csv"
python3 - "$out/$name-details.csv" <<'PY'
import csv, sys
keep = {"Duration", "SM Frequency", "Issue Slots Busy", "Compute (SM) Throughput", "Memory Throughput"}
for row in csv.DictReader(open(sys.argv[1])):
    if row.get("Metric Name") in keep:
        print(f'{row["Metric Name"]:28} {row.get("Metric Value", "")} {row.get("Metric Unit", "")}')
PY
echo "wrote $out/$name.ncu-rep and its csv pages"
