#!/usr/bin/env bash
# Builds the two container images (needs a Docker engine with BuildKit; none runs on the dev or CI
# machines of this project, so it is run by hand or by a release pipeline):
#
#   bash scripts/build-images.sh                # build both, tagged as below
#   bash scripts/build-images.sh --push         # build and push
#   bash scripts/build-images.sh --print-tags   # only print the tags it would use
#
# Tag scheme (VERSION is package.json's version, the chart's appVersion and the CRD's default image):
#   $REGISTRY/operator:VERSION           operator image (Dockerfile.operator)
#   $REGISTRY/runtime:VERSION            worker image (Dockerfile.runtime), CUDA $CUDA_VERSION
#   $REGISTRY/runtime:VERSION-cudaX.Y    the same image, named by its CUDA major.minor
# A build from a commit that is not the release tag vVERSION, or from a dirty tree, gets
# VERSION-dev.<short commit>[.dirty] instead of VERSION, so it never overwrites a release.
#
# Environment: REGISTRY (default ghcr.io/xattn), CUDA_VERSION (default 12.8.1), CUDA_ARCHITECTURES
# (default: sm_80 + sm_90a + PTX), NCCL_VERSION (default: the CUDA repository's newest libnccl2).
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="${REGISTRY:-ghcr.io/xattn}"
CUDA_VERSION="${CUDA_VERSION:-12.8.1}"
PUSH=0
PRINT=0
for arg in "$@"; do
  case "$arg" in
    --push) PUSH=1 ;;
    --print-tags) PRINT=1 ;;
    *) echo "build-images: unknown argument '$arg' (use --push or --print-tags)" >&2; exit 2 ;;
  esac
done

VERSION=$(node -p "require('./package.json').version")
tag="$VERSION"
if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
  if [[ "$(git describe --tags --exact-match 2>/dev/null || true)" != "v$VERSION" || -n "$(git status --porcelain 2>/dev/null)" ]]; then
    tag="$VERSION-dev.$(git rev-parse --short=8 HEAD)"
    [[ -n "$(git status --porcelain 2>/dev/null)" ]] && tag+=".dirty"
  fi
fi
cuda_mm=$(echo "$CUDA_VERSION" | cut -d. -f1,2)

OPERATOR_TAGS=("$REGISTRY/operator:$tag")
RUNTIME_TAGS=("$REGISTRY/runtime:$tag" "$REGISTRY/runtime:$tag-cuda$cuda_mm")

if ((PRINT)); then
  printf '%s\n' "${OPERATOR_TAGS[@]}" "${RUNTIME_TAGS[@]}"
  exit 0
fi

command -v docker >/dev/null || { echo "build-images: docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build-images: no Docker engine is reachable (docker info fails); build on a machine that runs one" >&2; exit 1; }

tag_args() { for t in "$@"; do printf -- '--tag\n%s\n' "$t"; done; }
mapfile -t op_tags < <(tag_args "${OPERATOR_TAGS[@]}")
mapfile -t rt_tags < <(tag_args "${RUNTIME_TAGS[@]}")
export DOCKER_BUILDKIT=1

echo "build-images: ${OPERATOR_TAGS[*]}"
docker build --file Dockerfile.operator "${op_tags[@]}" .
echo "build-images: ${RUNTIME_TAGS[*]}"
docker build --file Dockerfile.runtime "${rt_tags[@]}" \
  --build-arg "CUDA_VERSION=$CUDA_VERSION" \
  --build-arg "CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES:-}" \
  --build-arg "NCCL_VERSION=${NCCL_VERSION:-}" .

if ((PUSH)); then
  for t in "${OPERATOR_TAGS[@]}" "${RUNTIME_TAGS[@]}"; do docker push "$t"; done
fi
