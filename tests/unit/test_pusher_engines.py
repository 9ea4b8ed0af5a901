"""The FFmpeg engine's parts that need no network: the hard deadline (a call that holds the
GIL still ends in the contract's exit status), the per-start DTLS certificate, the engine
setting; and the test receiver's Pion-like parts (candidate order, liveness modes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from cctv_pusher.certificate import make_certificate
from cctv_pusher.config import ConfigError, PusherConfig
from cctv_pusher.ffmpeg_engine import reader_of
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.harness.constants import REPO_ROOT
from tests.media import ice_liveness
from tests.media.receiver import by_priority

ENV = {"RTSP_URL": "rtsp://cam/x", "WHIP_URL": "http://lk/w", "WHIP_TOKEN": "k"}


def run_program(body: str) -> subprocess.CompletedProcess[str]:
    """``body`` as a Python program with the pusher on its path (bounded: never a hang)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "deploy" / "pusher")}
    program = textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )


DEADLINE = """
    import ctypes, json, sys, time
    from cctv_pusher.deadline import hard_deadline

    def speak():
        sys.stderr.write(json.dumps({"event": "whip_failed", "reason": "no answer"}) + "\\n")
        sys.stderr.flush()

    blocking = ctypes.PyDLL(None).sleep  # a C call that keeps the GIL, like PyAV's write_header
    blocking.argtypes = [ctypes.c_uint]
    with hard_deadline(%(bound)s, 3, speak):
        blocking(%(hold)s)
    print("returned", flush=True)
"""


def test_a_call_holding_the_gil_past_the_bound_ends_in_exit_3_with_its_log_line() -> None:
    started = time.monotonic()
    done = run_program(DEADLINE % {"bound": 0.5, "hold": 30})
    assert done.returncode == 3, done
    assert time.monotonic() - started < 30, "the deadline did not cut the call short"
    assert [json.loads(line)["event"] for line in done.stderr.splitlines()] == ["whip_failed"]
    assert "returned" not in done.stdout


def test_a_call_that_returns_in_time_is_untouched() -> None:
    done = run_program(DEADLINE % {"bound": 30, "hold": 0})
    assert done.returncode == 0, done
    assert done.stdout.split() == ["returned"] and done.stderr == ""


def test_the_watchdog_child_is_gone_once_the_block_returns() -> None:
    done = run_program(
        """
        import os
        from cctv_pusher.deadline import hard_deadline
        with hard_deadline(30, 1, lambda: None):
            pass
        try:
            os.waitpid(-1, os.WNOHANG)
            print("a child is left")
        except ChildProcessError:
            print("no child")
        """
    )
    assert done.stdout.strip() == "no child", done


def test_the_dtls_certificate_is_p256_self_signed_and_its_key_private() -> None:
    cert = make_certificate()
    try:
        assert oct(cert.directory.stat().st_mode & 0o777) == "0o700"
        assert oct(cert.key_file.stat().st_mode & 0o777) == "0o600"
        parsed = x509.load_pem_x509_certificate(cert.cert_file.read_bytes())
        key = parsed.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        assert parsed.issuer == parsed.subject
    finally:
        cert.remove()
    assert not cert.directory.exists()


def test_each_start_gets_its_own_certificate() -> None:
    first, second = make_certificate(), make_certificate()
    try:
        assert first.cert_file.read_bytes() != second.cert_file.read_bytes()
    finally:
        first.remove()
        second.remove()


@pytest.mark.parametrize(
    ("value", "engine"), [("", "ffmpeg"), ("aiortc", "aiortc"), ("FFMPEG", "ffmpeg")]
)
def test_the_engine_defaults_to_ffmpeg(value: str, engine: str) -> None:
    assert PusherConfig.from_env({**ENV, "PUSHER_ENGINE": value}).engine == engine


def test_an_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PUSHER_ENGINE must be one of ffmpeg, aiortc"):
        PusherConfig.from_env({**ENV, "PUSHER_ENGINE": "gstreamer"})


@pytest.mark.parametrize(
    ("url", "value", "reader"),
    [
        ("rtsp://cam/live", "", "lean"),
        ("rtsp://cam/live", "FFmpeg", "ffmpeg"),
        ("rtsps://cam/live", "lean", "ffmpeg"),  # TLS is left to FFmpeg's demuxer
    ],
)
def test_the_ffmpeg_engine_reads_with_the_lean_reader_unless_told_or_tls(
    url: str, value: str, reader: str
) -> None:
    config = PusherConfig.from_env({**ENV, "RTSP_URL": url, "PUSHER_RTSP_READER": value})
    assert reader_of(config) == reader


def test_an_unknown_reader_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PUSHER_RTSP_READER must be one of lean, ffmpeg"):
        PusherConfig.from_env({**ENV, "PUSHER_RTSP_READER": "gstreamer"})


def test_answer_candidates_come_highest_priority_first_section_by_section() -> None:
    answer = "\r\n".join(
        [
            "v=0",
            "m=video 9 UDP/TLS/RTP/SAVPF 102",
            "a=candidate:1 1 udp 100 10.0.0.1 5000 typ srflx raddr 0.0.0.0 rport 0",
            "a=candidate:2 1 udp 2130706431 10.0.0.2 5001 typ host",
            "a=candidate:3 1 tcp 1000 10.0.0.3 9 typ host tcptype passive",
            "a=end-of-candidates",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=candidate:4 1 udp 5 10.0.0.4 5002 typ relay raddr 0.0.0.0 rport 0",
            "a=candidate:5 1 udp 2130706430 10.0.0.5 5003 typ host",
            "",
        ]
    )
    lines = by_priority(answer).split("\r\n")
    candidates = [line.split()[4] for line in lines if line.startswith("a=candidate")]
    assert candidates == ["10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.5", "10.0.0.4"]
    assert lines[5] == "a=end-of-candidates" and lines[6].startswith("m=audio")


def test_liveness_modes_are_validated() -> None:
    with pytest.raises(ValueError, match="liveness mode"):
        ice_liveness.use("lenient")
    with pytest.raises(ValueError, match="scale"):
        ice_liveness.use("pion", scale=2.0)
