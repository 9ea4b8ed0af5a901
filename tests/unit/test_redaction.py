"""Redaction of camera URLs: every way a camera carries credentials.

The passwords are canaries of letters that occur nowhere else, so "no part of it shows" is
checked as: no three characters of it in a row, and no piece between its punctuation.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from docker.errors import APIError
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.redact import Redactor, redact_text, redact_url, url_secrets
from orchestrator.runtime.sync_engine import translate
from tests.harness.constants import REPO_ROOT


def pieces(secret: str) -> set[str]:
    """What must not show of ``secret``: runs of 3 characters, and its words of 2 or more."""
    runs = {secret[i : i + 3] for i in range(len(secret) - 2)}
    words = {w for w in re.split(r"[^A-Za-z0-9]+", secret) if len(w) >= 2}
    return runs | words


def assert_hidden(shown: str, *secrets: str) -> None:
    for secret in secrets:
        leaked = sorted(p for p in pieces(secret) if p in shown)
        assert not leaked, f"{shown!r} shows {leaked} of the secret {secret!r}"


# --- userinfo with unencoded / # ? @ in the password -------------------------------------

ISSUE_URL = "rtsp://admin:p@ss/w#rd?x@10.0.0.5:554/Streaming/Channels/101"

USERINFO = [
    (ISSUE_URL, "p@ss/w#rd?x", "rtsp://***@10.0.0.5:554/Streaming/Channels/101"),
    ("rtsp://admin:Zq/Kx9@10.0.0.5/s1", "Zq/Kx9", "rtsp://***@10.0.0.5/s1"),
    ("rtsp://admin:Zq#Kx9@10.0.0.5/s1", "Zq#Kx9", "rtsp://***@10.0.0.5/s1"),
    ("rtsp://admin:Zq?Kx9@10.0.0.5/s1", "Zq?Kx9", "rtsp://***@10.0.0.5/s1"),
    ("rtsp://admin:Zq@Kx9@10.0.0.5/s1", "Zq@Kx9", "rtsp://***@10.0.0.5/s1"),
    ("rtsp://admin:Zq/@#?:Kx9@cam.example:8554/a", "Zq/@#?:Kx9", "rtsp://***@cam.example:8554/a"),
    ("rtsps://ops@corp.example:Wv9Yj@10.0.0.5/s1", "Wv9Yj", "rtsps://***@10.0.0.5/s1"),
    ("rtsp://admin:Zq/Kx9@[fe80::1]:554/s1", "Zq/Kx9", "rtsp://***@[fe80::1]:554/s1"),
    ("rtsp://admin:Zq%40Kx9@10.0.0.5/s1", "Zq%40Kx9", "rtsp://***@10.0.0.5/s1"),
    ("rtsp://admin:Zq/Kx9@10.0.0.5", "Zq/Kx9", "rtsp://***@10.0.0.5"),
]


@pytest.mark.parametrize(("url", "password", "shown"), USERINFO)
def test_userinfo_is_masked_whole_and_the_host_is_the_one_after_the_last_at(
    url: str, password: str, shown: str
) -> None:
    assert redact_url(url) == shown
    assert_hidden(redact_url(url), password)


BROKEN = [
    ("rtsp://admin:Zq/Kx9", "Zq/Kx9"),  # no "@": the password reads as a bad port
    ("rtsp://admin:Zq@Kx9@", "Zq@Kx9"),  # no host after the last "@"
    ("rtsp://admin:Zq@Kx9@/s1", "Zq@Kx9"),
    ("rtsp://admin:Zq@Kx9@bad host/s1", "Zq@Kx9"),
    ("rtsp://admin:Zq@Kx9@10.0.0.5:55x4/s1", "Zq@Kx9"),
    ("rtsp://admin:Zq9Kx@[::1/s1", "Zq9Kx"),
    ("rtsp://admin:Zq9Kx@ca\nm/s1", "Zq9Kx"),
]


@pytest.mark.parametrize(("url", "password"), BROKEN)
def test_a_url_too_broken_to_find_a_host_shows_nothing_after_the_scheme(
    url: str, password: str
) -> None:
    shown = redact_url(url)
    assert shown in ("rtsp://***", "rtsp://***@", "rtsp://***@/s1"), shown
    assert_hidden(shown, password)


@pytest.mark.parametrize("url", ["admin:Zq9Kx@10.0.0.5/s1", "", "rtsp:/admin:Zq9Kx@h", "://x"])
def test_no_scheme_shows_nothing(url: str) -> None:
    assert redact_url(url) == "***"


def test_urls_without_credentials_are_shown_as_they_are() -> None:
    for url in (
        "rtsp://10.0.0.1/s1",
        "rtsp://cam-7.example:8554/Streaming/Channels/101",
        "rtsp://[::1]:8554/a",
        "rtsp://10.0.0.5/cam/realmonitor;channel=1;subtype=0",
        "unix:///data/valkey.sock",
    ):
        assert redact_url(url) == url


# --- credential parameters in the path (;k=v and &k=v) and in the query ------------------

KEYS = ["user", "username", "password", "pwd", "passwd", "pass", "token", "auth", "key", "secret"]


@pytest.mark.parametrize("key", [*KEYS, "PassWord", "USER", "Pwd", "access_token", "apiKey"])
def test_credential_path_parameters_are_masked_whatever_their_case(key: str) -> None:
    url = f"rtsp://10.0.0.5/live;{key}=Zq9Kx;channel=1"
    assert redact_url(url) == f"rtsp://10.0.0.5/live;{key}=***;channel=1"


@pytest.mark.parametrize("key", [*KEYS, "PASSWORD", "Token"])
def test_credential_query_parameters_never_show(key: str) -> None:
    url = f"rtsp://10.0.0.5/live?{key}=Zq9Kx&channel=1"
    assert redact_url(url) == "rtsp://10.0.0.5/live"


RECORDERS = [
    # Dahua-style path parameters (the issue's example)
    (
        "rtsp://10.0.0.5/cam/realmonitor;user=admin;password=Zq9Kx;channel=1",
        "rtsp://10.0.0.5/cam/realmonitor;user=***;password=***;channel=1",
    ),
    # the ?user=...&password=... form
    ("rtsp://10.0.0.5:554/cam/realmonitor?user=admin&password=Zq9Kx", "rtsp://10.0.0.5:554/cam/realmonitor"),
    # Xiongmai-style: parameters in the last path segment, "&" between them
    (
        "rtsp://10.0.0.5:554/user=admin&password=Zq9Kx&channel=1&stream=0.sdp?real_stream",
        "rtsp://10.0.0.5:554/user=***&password=***&channel=1&stream=0.sdp",
    ),
    # ... or "_" between them: the value runs to the end, all masked
    ("rtsp://10.0.0.5/user=admin_password=Zq9Kx_channel=1_stream=0.sdp", "rtsp://10.0.0.5/user=***"),
    # a path-parameter password holding / ? # (the value runs to the next ";" or "&")
    (
        "rtsp://10.0.0.5/cam;user=admin;password=Zq/Kx?Wv#Yj;channel=2",
        "rtsp://10.0.0.5/cam;user=***;password=***;channel=2",
    ),
    # both userinfo and parameters
    (
        "rtsp://admin:Zq/Kx@10.0.0.5/cam;pwd=Wv9Yj;channel=1?token=Qr8Ts",
        "rtsp://***@10.0.0.5/cam;pwd=***;channel=1",
    ),
    # an "@" inside a parameter value: the host cannot be told, nothing is shown
    ("rtsp://10.0.0.5/cam;user=admin;password=Zq@Kx9", "rtsp://***"),
    ("rtsp://10.0.0.5/cam;password=Zq@Kx9;channel=1", "rtsp://***"),
    ("rtsp://10.0.0.5/cam?user=op@corp.example&password=Zq9Kx", "rtsp://***"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "shown"), RECORDERS)
def test_recorder_forms(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert_hidden(redact_url(url), "Zq9Kx", "Zq@Kx9", "Zq/Kx?Wv#Yj", "Wv9Yj", "Qr8Ts", "Zq/Kx")
    assert "admin" not in redact_url(url)


# --- properties: any password, any punctuation ------------------------------------------

PASSWORD = st.text(alphabet="ZqKxWv9/#?@:;&=%_.-~!$'()*+,", min_size=1, max_size=24)


@given(PASSWORD)
def test_any_userinfo_password_is_masked_or_everything_is(password: str) -> None:
    shown = redact_url(f"rtsp://admin:{password}@10.0.0.5:554/s1")
    assert shown in ("rtsp://***@10.0.0.5:554/s1", "rtsp://***"), (password, shown)


@given(PASSWORD.filter(lambda p: ";" not in p and "&" not in p))
def test_any_path_parameter_password_is_masked_or_everything_is(password: str) -> None:
    shown = redact_url(f"rtsp://10.0.0.5/cam;user=admin;password={password};channel=1")
    assert shown in ("rtsp://10.0.0.5/cam;user=***;password=***;channel=1", "rtsp://***"), (
        password,
        shown,
    )


# --- the same rules for free text, the debug bundle and Docker engine messages -----------

RECORDER_SECRETS = ("Zq9Kx", "Zq@Kx9", "Zq/Kx?Wv#Yj", "Wv9Yj", "Qr8Ts", "Zq/Kx")
ALL_CASES = [
    *((url, (password,)) for url, password, _ in USERINFO),
    *((url, (password,)) for url, password in BROKEN),
    *((url, tuple(s for s in RECORDER_SECRETS if s in url)) for url, _ in RECORDERS),
]


@pytest.mark.parametrize("url", [u for u, _ in ALL_CASES if not re.search(r"\s", u)])
def test_a_url_inside_a_log_line_is_redacted_the_same_way(url: str) -> None:
    line = f'[rtsp @ 0x55] opening "{url}" failed: 401 Unauthorized'
    expected = f'[rtsp @ 0x55] opening "{redact_url(url)}" failed: 401 Unauthorized'
    assert redact_text(line) == expected


# In "user=admin_password=x_channel=1" nothing tells where the password ends: the bundle
# masks the whole value, not the password alone.
@pytest.mark.parametrize(
    ("url", "secrets"), [(u, s) for u, s in ALL_CASES if "admin_password" not in u]
)
def test_the_bundle_redactor_masks_each_secret_part_even_outside_the_url(
    url: str, secrets: tuple[str, ...]
) -> None:
    scrub = Redactor(url_secrets(url))
    for secret in secrets:
        text = f"opening {url}\nretrying with pw {secret}\nuserinfo admin:{secret}"
        assert_hidden(scrub(text), secret)


def test_url_secrets_holds_the_decoded_password_too() -> None:
    assert "Zq@Kx9" in url_secrets("rtsp://admin:Zq%40Kx9@10.0.0.5/s1")
    assert {"Zq9Kx", "Wv9Yj"} <= set(url_secrets("rtsp://h/a;password=Zq9Kx?token=Wv9Yj"))


def test_docker_engine_messages_are_redacted_against_the_pusher_env() -> None:
    response = requests.Response()
    response.status_code = 400
    explanation = f"invalid env RTSP_URL={ISSUE_URL} (pw p@ss/w#rd?x) for {ISSUE_URL[7:]}"
    error = translate("create", APIError("bad", response, explanation), [ISSUE_URL, "cam-1"])
    assert_hidden(str(error), "p@ss/w#rd?x")
    assert "refused (400)" in str(error)


def test_redaction_takes_linear_time_on_hostile_input() -> None:
    """A 2 MiB log line with no space, or a URL of many parameters, is no regex blow-up."""
    n = 2 * 1024 * 1024
    started = time.perf_counter()
    assert redact_text("a" * n) == "a" * n
    redact_text("rtsp://" + "@" * n)
    redact_url("rtsp://h/" + "key=a&" * (n // 48))
    url_secrets("rtsp://h/" + "user" * (n // 4))
    assert time.perf_counter() - started < 5


def test_the_pusher_redacts_with_the_services_own_code() -> None:
    """The pusher image cannot import the service: it carries a verbatim copy, kept equal."""
    root = REPO_ROOT
    service = (root / "orchestrator/domain/redact.py").read_bytes()
    assert (root / "deploy/pusher/cctv_pusher/redact.py").read_bytes() == service, (
        "deploy/pusher/cctv_pusher/redact.py differs: copy orchestrator/domain/redact.py over it"
    )
