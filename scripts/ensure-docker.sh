#!/usr/bin/env bash
# Make sure a Docker engine answers. Installs Debian's docker.io when dockerd is missing and we
# are root, and starts dockerd in the background when none answers. Bounded: gives up after 60 s.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    echo "ensure-docker: no Docker engine answers and dockerd is missing; install docker.io" >&2
    exit 1
  fi
  echo "ensure-docker: installing docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    echo "ensure-docker: dockerd is installed but not running, and we are not root" >&2
    exit 1
  fi
  echo "ensure-docker: starting dockerd (log: /tmp/cctv-dockerd.log)" >&2
  nohup dockerd >/tmp/cctv-dockerd.log 2>&1 &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 0.5
  done
  echo "ensure-docker: dockerd did not answer within 60 s; see /tmp/cctv-dockerd.log" >&2
  exit 1
fi
