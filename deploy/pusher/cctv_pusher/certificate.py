"""The DTLS certificate of the FFmpeg engine: ECDSA P-256, self-signed, made at every start.

FFmpeg's WHIP muxer makes its own certificate on P-224 when given none, and OpenSSL-based
peers refuse that curve. WebRTC certificates are self-signed and authenticated only by the
fingerprint in the SDP offer, so one made per process is what browsers do too. The ``openssl``
command makes it in a few milliseconds outside this process: generating it in Python would
import ``cryptography`` and keep 10-20 MiB resident for the pusher's whole life.

The key never leaves a private directory (mode 0700, file 0600) that is removed once FFmpeg
has read it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL

OPENSSL_TIMEOUT_S = 10.0


class CertificateError(Exception):
    """The certificate could not be made; the message names the cause, never key material."""


@dataclass(frozen=True, slots=True)
class Certificate:
    directory: Path
    cert_file: Path
    key_file: Path

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def make_certificate(days: int = 30) -> Certificate:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError("the openssl command is not installed")
    directory = Path(tempfile.mkdtemp(prefix="dtls-"))  # mode 0700
    cert = Certificate(directory, directory / "cert.pem", directory / "key.pem")
    argv = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(cert.key_file), "-out", str(cert.cert_file),
        "-days", str(days), "-subj", "/CN=cctv-pusher",
    ]  # fmt: skip
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv, no input from outside
            argv, capture_output=True, timeout=OPENSSL_TIMEOUT_S, check=False, stdin=DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        cert.remove()
        raise CertificateError(f"openssl failed: {type(exc).__name__}") from None
    if done.returncode != 0 or not cert.key_file.exists():
        cert.remove()
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise CertificateError(f"openssl exited {done.returncode}: {tail[0][:200]}")
    cert.key_file.chmod(0o600)
    return cert
