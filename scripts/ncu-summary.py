"""Summarises one kernel's Nsight Compute csv pages (scripts/ncu-kernel.sh): headline metrics, the busiest
pipes and where warps stall, so two kernels (ours against cuDNN's) compare on one screen.
    python3 scripts/ncu-summary.py NAME-details.csv NAME-raw.csv
"""
import csv
import re
import sys

HEADLINE = {"Duration", "SM Frequency", "Issue Slots Busy", "Issued Ipc Active", "Compute (SM) Throughput",
            "Memory Throughput", "Registers Per Thread", "Achieved Occupancy",
            "Warp Cycles Per Issued Instruction", "Executed Instructions"}


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def raw_metrics(path):
    """The raw page: a header row of metric names, a row of units, then one row per kernel (the first)."""
    rows = list(csv.reader(open(path)))
    names, values = rows[0], rows[2] if len(rows) > 2 else []
    return dict(zip(names, values))


def main(details_path, raw_path):
    for row in csv.DictReader(open(details_path)):
        if row.get("Metric Name") in HEADLINE:
            print(f'{row["Metric Name"]:36} {row.get("Metric Value", "")} {row.get("Metric Unit", "")}')
    raw = raw_metrics(raw_path)
    print(f'kernel: {raw.get("Kernel Name", "?")[:110]}')
    pipes = [(k, number(v)) for k, v in raw.items()
             if re.match(r"sm__(inst_executed_)?pipe_.*(pct_of_peak_sustained_active)$", k) and number(v)]
    print("busiest pipes (% of peak, active cycles):")
    for k, v in sorted(pipes, key=lambda kv: -kv[1])[:10]:
        print(f"  {v:6.1f}  {k}")
    # Warp-state samples: where the scheduler found each warp, summed over the kernel.
    stalls = [(k, number(v)) for k, v in raw.items()
              if re.match(r"smsp__pcsamp_warps_issue_stalled_[a-z_]+$", k) and number(v)
              and not k.endswith("_not_issued")]
    total = sum(v for _, v in stalls) or 1.0
    print("warp states (% of samples):")
    for k, v in sorted(stalls, key=lambda kv: -kv[1])[:12]:
        print(f"  {100 * v / total:5.1f}  {k.removeprefix('smsp__pcsamp_warps_issue_stalled_')}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
