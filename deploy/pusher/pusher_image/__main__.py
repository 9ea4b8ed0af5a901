"""``python -m pusher_image [--remove-stale]`` (``deploy/pusher`` on ``PYTHONPATH``): build the
pusher image without a registry and print its tag."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import docker

from pusher_image import ensure_pusher_image, remove_stale
from pusher_image.common import PusherImageError, log
from pusher_image.program import PROGRAM_REPO
from pusher_image.rootfs import BASE_REPO, SUITE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pusher_image",
        description=(
            "Build the WHIP pusher image without a container registry and print its tag. "
            f"The base ({BASE_REPO}:<hash>) is a Debian {SUITE} root filesystem made with "
            "mmdebstrap from deploy/pusher/apt-packages.txt plus a venv at /opt/pusher with "
            "the pins of deploy/pusher/requirements.txt (wheels fetched by this machine's pip), "
            f"imported with `docker import`. The program image ({PROGRAM_REPO}:<hash>) is "
            "`FROM <base>` plus the program-layer lines of deploy/pusher/Dockerfile (after its "
            "`FROM base`) with deploy/pusher/cctv_pusher/ as the context. Tags are content "
            "hashes of those inputs: an existing tag is reused, so a second run takes seconds."
        ),
    )
    parser.add_argument(
        "--remove-stale",
        action="store_true",
        help=f"afterwards untag older {PROGRAM_REPO}:* and {BASE_REPO}:* images",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    client = docker.from_env(timeout=120)
    try:
        tag = ensure_pusher_image(client)
        if args.remove_stale:
            for stale in remove_stale(client):
                log(f"removed {stale}")
    except PusherImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
