#!/usr/bin/env bash
# Azurite (npm "azurite", Microsoft's Azure Storage emulator) for the object-store tests.
#
#   scripts/azurite.sh install   # npm install once into $AZURITE_CACHE (default .cache/azurite)
#   scripts/azurite.sh bin       # print the path of azurite-blob (exit 1 when not installed)
#
# Idempotent: a finished install leaves a stamp naming the version and is not redone. The tests
# (tests/objectstores.py) start azurite-blob on 127.0.0.1 themselves and skip when it is absent.
set -euo pipefail

VERSION="3.37.0"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${AZURITE_CACHE:-$REPO/.cache/azurite}"
BIN="$CACHE/node_modules/.bin/azurite-blob"
STAMP="$CACHE/.sen12ts-installed"

die() { echo "azurite.sh: error: $*" >&2; exit 2; }

install() {
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" && -x "$BIN" ]]; then return 0; fi
  command -v npm >/dev/null || die "npm not found; install Node.js 20 and npm"
  mkdir -p "$CACHE"
  if command -v flock >/dev/null; then  # two test workers may install at once
    exec 9>"$CACHE/.lock"; flock 9
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" && -x "$BIN" ]]; then return 0; fi
  fi
  echo "azurite.sh: installing azurite@$VERSION into $CACHE" >&2
  npm install --prefix "$CACHE" --no-audit --no-fund --loglevel=error --save-exact "azurite@$VERSION" >&2
  [[ -x "$BIN" ]] || die "npm install finished but $BIN is missing"
  printf '%s' "$VERSION" >"$STAMP"
}

case "${1:-}" in
  install) install; echo "$BIN" ;;
  bin) [[ -x "$BIN" ]] && echo "$BIN" || exit 1 ;;
  *) echo "usage: $0 install | bin" >&2; exit 2 ;;
esac
