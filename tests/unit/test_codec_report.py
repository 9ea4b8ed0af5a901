"""The pusher's ``codec`` log event, as the orchestrator reads it out of container logs."""

from __future__ import annotations

import json

import pytest

from orchestrator.domain.codec import CodecReport

HIGH = {"event": "codec", "camera_id": "cam-1", "profile": "High", "profile_idc": 100,
        "h264_level": "4.0", "width": 1920, "height": 1080, "fps": 25.0,
        "b_frames": True}  # fmt: skip


def test_the_latest_valid_report_wins_and_timestamps_are_skipped() -> None:
    baseline = {**HIGH, "profile": "Constrained Baseline", "b_frames": False, "fps": None}
    text = "\n".join(
        [
            "2026-11-29T10:00:00.000000000Z " + json.dumps(baseline),
            '2026-11-29T10:00:01.000000000Z {"event": "published", "codec": "h264"}',
            "2026-11-29T10:00:02.000000000Z " + json.dumps(HIGH),
            'not json at all, mentioning "codec" {',
        ]
    )
    report = CodecReport.latest_in(text)
    assert report == CodecReport("High", "4.0", 1920, 1080, 25.0, True)
    assert CodecReport.latest_in(json.dumps(baseline)) == CodecReport(
        "Constrained Baseline", "4.0", 1920, 1080, None, False
    )
    assert CodecReport.latest_in("") is None


@pytest.mark.parametrize(
    "change",
    [
        {"profile": "High; DROP"},
        {"profile": None},
        {"profile": ""},
        {"h264_level": "forty"},
        {"width": 0},
        {"height": 99999},
        {"width": "1920"},
        {"fps": -1},
        {"fps": True},
        {"b_frames": "yes"},
        {"event": "codecs"},
    ],
)
def test_a_malformed_report_is_ignored(change: dict[str, object]) -> None:
    assert CodecReport.latest_in(json.dumps({**HIGH, **change})) is None


def test_fields_round_trip_through_the_metadata_hash() -> None:
    report = CodecReport("Main", "3.1", 1280, 720, 29.97, False)
    profile, level, width, height, fps, b_frames = report.to_fields()
    meta = {"codec_profile": profile, "codec_level": level, "codec_width": width,
            "codec_height": height, "codec_fps": fps, "codec_b_frames": b_frames,
            "codec_generation": "3"}  # fmt: skip
    assert CodecReport.from_meta(meta) == CodecReport("Main", "3.1", 1280, 720, 29.97, False, 3)
    assert CodecReport.from_meta({}) is None
    assert CodecReport.from_meta({**meta, "codec_width": "x"}) is None
