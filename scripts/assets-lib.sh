# Shared by scripts/*-assets.sh (sourced, not run): argument parsing and output conventions.
#   ASSETS_NAME=helm-assets; source "$(dirname "$0")/assets-lib.sh"
# gives log/die on stderr and `finish VAR VALUE`: prints `export VAR='VALUE'` with --env, else
# VALUE, as the last line of stdout, and exits 0.
PRINT_ENV=0
[[ "${1:-}" == "--env" ]] && PRINT_ENV=1

log() { echo "$ASSETS_NAME: $*" >&2; }
die() { echo "$ASSETS_NAME: ERROR: $*" >&2; exit 1; }
finish() {
  if ((PRINT_ENV)); then echo "export $1='$2'"; else echo "$2"; fi
  exit 0
}
