#!/usr/bin/env bash
# Bundle the browser libraries the pages use into orchestrator/static/vendor, from npm with the
# versions web/package-lock.json pins. Run when web/package.json changes; the result is
# committed, so the service never fetches anything at run time (and `make run` needs no npm).
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund --ignore-scripts
vendor=../orchestrator/static/vendor
mkdir -p "$vendor"
cp node_modules/livekit-client/dist/livekit-client.umd.js "$vendor/livekit-client.umd.js"
cp node_modules/livekit-client/LICENSE "$vendor/livekit-client.LICENSE" 2>/dev/null || true
version=$(node -p "require('./node_modules/livekit-client/package.json').version")
echo "livekit-client $version -> $vendor/livekit-client.umd.js"
