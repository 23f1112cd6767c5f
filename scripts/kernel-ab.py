#!/usr/bin/env python3
"""A/B of kernel builds on one GPU, same machine, same call (see scripts/kernel-variants.sh):
    python3 scripts/kernel-ab.py [--rounds 4] [--iters 20] [--shapes H:Hkv:D:lq:lkv,...] [--paths sm90,...] [--check] [VARIANT ...]
Runs build/exp/VARIANT/bench in turn (every variant once per round, in reverse order every other round, so
drift and heat hit all alike), prints the
median of each timing per shape, path and variant, and writes the raw lines and the table to $OUT (or
/tmp/kernel-ab). --check first runs each variant's xattn_cuda_check and stops if one fails."""
import argparse, json, os, statistics, subprocess, sys

ISSUE_SHAPES = "32:8:128:2048:32768,32:8:128:512:131072,16:16:64:1024:65536"
FIELDS = [("fwd", "ours_fwd_ms"), ("bwd add", "ours_bwd_kernels_ms"), ("bwd write", "ours_bwd_write_ms"), ("fwd+bwd", "ours_fwdbwd_ms")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", help="names under build/exp (default: all)")
    ap.add_argument("--rounds", type=int, default=4, help="even counts put each variant first as often as last")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--shapes", default=ISSUE_SHAPES)
    ap.add_argument("--paths", default="sm90,sm90lag0", help="kernels to time, of sm90,sm90lag0,mma (the portable mma path is slow: only when it changed)")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    paths = a.paths.split(",")
    variants = a.variants or sorted(d for d in os.listdir("build/exp") if os.path.isfile(f"build/exp/{d}/bench"))
    if not variants:
        sys.exit("no variants in build/exp: build them with scripts/kernel-variants.sh")
    out = os.environ.get("OUT", "/tmp/kernel-ab")
    os.makedirs(out, exist_ok=True)
    if a.check:
        for v in variants:
            r = subprocess.run([f"build/exp/{v}/check"], capture_output=True, text=True, timeout=300)
            last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
            print(f"check {v}: {last}", flush=True)
            if r.returncode != 0:
                open(f"{out}/check-{v}.log", "w").write(r.stdout + r.stderr)
                sys.exit(f"check {v} failed: see {out}/check-{v}.log")
    times = {}  # (shape, path, variant) -> field -> [ms]
    with open(f"{out}/ab.jsonl", "w") as raw:
        for rnd in range(a.rounds):
            # The order turns round each round: a variant run right after another meets a hotter card
            # (session 14: +1.5 % on an unchanged forward), which must not fall on one variant only.
            for v in variants if rnd % 2 == 0 else variants[::-1]:
                r = subprocess.run([f"build/exp/{v}/bench", str(a.iters), "-1", a.shapes, a.paths], capture_output=True, text=True, timeout=600)
                if r.returncode != 0:
                    sys.exit(f"bench {v} failed in round {rnd + 1}:\n{r.stderr[-2000:]}")
                for line in r.stdout.splitlines():
                    if not line.startswith("{"):
                        continue
                    d = json.loads(line)
                    if d["path"] not in paths:
                        continue  # a bench built before it took a path list times them all
                    raw.write(json.dumps({"variant": v, "round": rnd + 1, **d}) + "\n")
                    row = times.setdefault((d["shape"], d["path"], v), {})
                    for name, key in FIELDS:
                        row.setdefault(name, []).append(d[key])
            print(f"round {rnd + 1}/{a.rounds} done", flush=True)
    device = json.loads(open(f"{out}/ab.jsonl").readline())["device"]
    lines = [f"{device}: median ms of {a.rounds} rounds", f"{'shape':32} {'path':9} {'variant':12}" + "".join(f"{n:>11}" for n, _ in FIELDS)]
    for (shape, path, v), row in sorted(times.items()):
        lines.append(f"{shape:32} {path:9} {v:12}" + "".join(f"{statistics.median(row[n]):11.3f}" for n, _ in FIELDS))
    open(f"{out}/ab.txt", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
