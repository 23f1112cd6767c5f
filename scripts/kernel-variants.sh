#!/usr/bin/env bash
# Builds the standalone kernel bench and check of several revisions, for an A/B on the GPU machine:
#   bash scripts/kernel-variants.sh [--addon] base=HEAD~1 new=HEAD [wip=WORKTREE]
# Each NAME=REV checks native/ out at REV into the build tree (WORKTREE: the files as they are now), builds
# xattn_cuda_bench and xattn_cuda_check in build/gpu, and copies them, stripped, to build/exp/NAME/{bench,check};
# native/ is restored afterwards. Carry build/exp (static binaries: no .device needed) and run
# `python3 scripts/kernel-ab.py` there. --addon also builds the CUDA addon into build/exp/NAME/xattn.node, for
# a schedule A/B: `node scripts/dist-ab.mjs base=XATTN_ADDON=$PWD/build/exp/base/xattn.node new=...`.
set -euo pipefail
cd "$(dirname "$0")/.."
addon=0
if [ "${1:-}" = --addon ]; then addon=1; shift; fi
[ $# -gt 0 ] || { sed -n 2,8p "$0"; exit 2; }
[ -f build/gpu/build.ninja ] || { echo "build/gpu is not configured: configure the CUDA build first (native/cuda/NOTES.md)"; exit 1; }
# The tree to come back to: HEAD, or a stash commit of the tracked files as they are now. Only the working
# tree changes (git restore --worktree), never the index.
orig=HEAD
if ! git diff --quiet HEAD -- native; then orig=$(git stash create); fi
added=()  # files the current variant has that the original tree does not
restore() {
  for f in ${added[@]+"${added[@]}"}; do rm -f "$f"; done
  added=()
  git restore --source="$orig" --worktree -- native
}
trap restore EXIT
for spec in "$@"; do
  name=${spec%%=*} rev=${spec#*=}
  [[ "$name" =~ ^[A-Za-z0-9_-]+$ && "$spec" == *=* ]] || { echo "bad variant '$spec': expected NAME=REV"; exit 2; }
  restore
  if [ "$rev" != WORKTREE ]; then
    git rev-parse --verify -q "$rev^{commit}" >/dev/null || { echo "unknown revision '$rev'"; exit 2; }
    mapfile -t added < <(git diff --name-only --diff-filter=A "$orig" "$rev" -- native)
    git restore --source="$rev" --worktree -- native
  fi
  echo "== $name ($rev)"
  ninja -C build/gpu xattn_cuda_bench xattn_cuda_check | tail -1
  mkdir -p "build/exp/$name"
  strip -o "build/exp/$name/bench" build/gpu/xattn_cuda_bench
  strip -o "build/exp/$name/check" build/gpu/xattn_cuda_check
  if [ "$addon" = 1 ]; then
    ninja -C build/gpu xattn | tail -1
    strip -o "build/exp/$name/xattn.node" build/gpu/Release/xattn.node
  fi
done
