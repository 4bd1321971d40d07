#!/usr/bin/env bash
# Build STAC Browser (npm @radiantearth/stac-browser, source only) for one catalog URL.
#
#   scripts/stac-browser.sh install                          # fetch + npm install once (~50 s)
#   scripts/stac-browser.sh build CATALOG_URL [DEST] [PREFIX] # build for a catalog (~30 s)
#
# STAC Browser reads its catalog URL at build time, so every URL gets its own build. Both steps
# are idempotent: the npm install is kept in $STAC_BROWSER_CACHE (default .cache/stac-browser in
# the repo, gitignored) and a build whose URL and prefix match the stamp in DEST is not redone.
# DEST defaults to $STAC_BROWSER_CACHE/dist/<hash of URL+PREFIX>; PREFIX (the URL path the
# browser is served under) defaults to "/". Prints the DEST folder as its last line.
# ol-stac is pinned to 1.4.0: ^1.1.0 resolves to 1.6.0, which needs a newer ol than STAC Browser
# 4.0.1 pins and fails the build (see docs/distribute.md).
set -euo pipefail

VERSION="4.0.1"
OL_STAC="1.4.0"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${STAC_BROWSER_CACHE:-$REPO/.cache/stac-browser}"
SRC="$CACHE/stac-browser-$VERSION"
STAMP="$SRC/.sen12ts-installed"

die() { echo "stac-browser.sh: error: $*" >&2; exit 2; }
command -v npm >/dev/null || die "npm not found; install Node.js 20 and npm (make install does on Debian)"

install() {
  if [[ -f "$STAMP" ]]; then return 0; fi
  mkdir -p "$CACHE"
  rm -rf "$CACHE"/.install.*  # left by an interrupted install
  local tmp
  tmp="$(mktemp -d "$CACHE/.install.XXXXXX")"
  echo "stac-browser.sh: fetching @radiantearth/stac-browser@$VERSION into $SRC" >&2
  (cd "$tmp" && npm pack --silent "@radiantearth/stac-browser@$VERSION" >/dev/null && tar xzf ./*.tgz)
  (cd "$tmp/package" && npm install --no-audit --no-fund --loglevel=error >&2 \
     && npm install --no-audit --no-fund --loglevel=error --save-exact "ol-stac@$OL_STAC" >&2)
  rm -rf "$SRC"
  mv "$tmp/package" "$SRC"
  rm -rf "$tmp"
  touch "$STAMP"
}

build() {
  local url="${1:?usage: stac-browser.sh build CATALOG_URL [DEST] [PREFIX]}"
  local prefix="${3:-/}"
  [[ "$url" =~ ^https?:// ]] || die "catalog URL must start with http:// or https://, got '$url'"
  [[ "$prefix" == /* && "$prefix" == */ ]] || die "path prefix must start and end with '/', got '$prefix'"
  local key; key="$(printf '%s %s %s' "$VERSION" "$url" "$prefix" | sha256sum | cut -c1-12)"
  local dest="${2:-$CACHE/dist/$key}"
  if [[ -f "$dest/.sen12ts-build" && "$(cat "$dest/.sen12ts-build")" == "$VERSION $url $prefix" ]]; then
    echo "$dest"; return 0
  fi
  install
  local tmp="$dest.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$dest")"
  echo "stac-browser.sh: building for $url (prefix $prefix) into $dest" >&2
  (cd "$SRC" && npx --no-install vue-cli-service build --catalogUrl="$url" --historyMode=hash \
     --pathPrefix="$prefix" --noSourceMaps --dest "$tmp" >"$CACHE/build.log" 2>&1) \
     || { tail -20 "$CACHE/build.log" >&2; rm -rf "$tmp"; die "build failed; log in $CACHE/build.log"; }
  printf '%s %s %s' "$VERSION" "$url" "$prefix" >"$tmp/.sen12ts-build"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "$dest"
}

case "${1:-}" in
  install) install; echo "$SRC" ;;
  build) shift; build "$@" ;;
  *) echo "usage: $0 install | build CATALOG_URL [DEST] [PREFIX]" >&2; exit 2 ;;
esac
