"""The debug bundle's redactor: a secret is removed wherever it appears (pure).

``orchestrator.oncall.bundle`` scrubs every file with the one redaction of
``orchestrator.domain.redact`` (tests/unit/test_redaction.py has the URL forms)."""

from __future__ import annotations

from orchestrator.domain.redact import Redactor, url_secrets


def test_every_part_of_a_camera_url_is_masked_even_outside_a_url() -> None:
    url = "rtsp://op:p%40ss-Canary1@10.1.2.3:554/live?token=tok-Canary2"
    scrub = Redactor(url_secrets(url))
    line = (
        f"ffmpeg: opening {url}; retry with password p@ss-Canary1 "
        "and token tok-Canary2 for op:p%40ss-Canary1"
    )
    cleaned = scrub(line)
    for secret in ("p%40ss-Canary1", "p@ss-Canary1", "tok-Canary2"):
        assert secret not in cleaned


def test_any_url_credentials_are_masked_and_short_values_are_ignored() -> None:
    scrub = Redactor(["abc", "livekit-secret-0123456789"])
    text = "rtsp://u:unknown@cam/x livekit-secret-0123456789 abc"
    assert scrub(text) == "rtsp://***@cam/x *** abc"


def test_the_bundle_uses_the_one_redaction_for_passwords_urlsplit_misreads() -> None:
    urls = (
        "rtsp://admin:p@ss/w#rd?x@10.0.0.5:554/Streaming/Channels/101",
        "rtsp://10.0.0.5/cam/realmonitor;user=admin;password=Pw-Canary3;channel=1",
    )
    scrub = Redactor([s for url in urls for s in url_secrets(url)])
    line = f"pusher: opening {urls[0]} then {urls[1]}; unknown rtsp://u:Pw/Canary4@cam/x"
    cleaned = scrub(line + " p@ss/w#rd?x Pw-Canary3")
    for secret in ("p@ss", "w#rd", "Pw-Canary3", "Canary4"):
        assert secret not in cleaned, cleaned
    assert "rtsp://***@10.0.0.5:554/Streaming/Channels/101" in cleaned
    assert "rtsp://10.0.0.5/cam/realmonitor;user=***;password=***;channel=1" in cleaned
