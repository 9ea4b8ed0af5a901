"""The debug bundle's redactor: a secret is removed wherever it appears (pure)."""

from __future__ import annotations

from orchestrator.oncall.bundle import Redactor, url_secrets


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
