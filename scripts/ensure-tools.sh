#!/usr/bin/env bash
# Make sure the Debian packages the tests drive are installed (installs them when root):
#   faketime  libfaketime, which sets one replica's clock apart in the clock-skew test
#   chromium  the browser the page tests drive (Playwright, no browser download)
set -euo pipefail

missing=()
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(faketime)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "ensure-tools: missing Debian packages: ${missing[*]} (install them, or run as root)" >&2
  exit 1
fi
echo "ensure-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
