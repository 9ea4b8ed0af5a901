"""The hand-written ``/stream/stats`` body (``orchestrator/api/stats_body.py``) against the
contract's pydantic models: every field, in order, with codec, placement and retry set; ETag
stability and ``If-None-Match`` matching."""

from __future__ import annotations

import json

from orchestrator.api.schemas import StatsResponse
from orchestrator.api.stats_body import StatsBodies, etag_matches
from orchestrator.domain.codec import CodecReport
from orchestrator.stats_snapshot import Snapshot
from orchestrator.store.stats import CameraStat, SourceStat, StreamStats

CAMERA = CameraStat(
    camera_id="cam-1",
    camera_name="Gate «1» / البوابة",
    viewer_count=2,
    reserved_count=3,
    publisher_connected=True,
    ingress_status="ENDPOINT_PUBLISHING",
    viewers_by_source={"METRO": 2, "BUS": 1},
    source="METRO",
    active_since_ms=1_795_000_000_123,
    pusher_state="RUNNING",
    generation=4,
    restarts=1,
    last_error='exit 1: "camera refused"',
    retry_at_ms=1_795_000_001_000,
    codec=CodecReport("High", "4.0", 1920, 1080, 25.0, True, 4),
    node="worker-2",
    waiting=None,
)


def stats(*cameras: CameraStat, timestamp_ms: int = 1_795_000_002_000) -> StreamStats:
    return StreamStats(
        timestamp_ms=timestamp_ms,
        cameras=list(cameras),
        sources=[SourceStat("BUS", 1, 20, 1), SourceStat("METRO", 2, 30, 1)],
        total_current=3,
        total_limit=500,
    )


async def test_the_body_is_the_model_field_for_field() -> None:
    body = await StatsBodies().body(Snapshot(stats(CAMERA), 0.0))
    raw = body.with_age(7)
    parsed = json.loads(raw)
    model = StatsResponse.model_validate_json(raw)
    assert list(parsed) == list(StatsResponse.model_fields)
    assert parsed == model.model_dump(mode="json")
    camera = parsed["camera_stats"][0]
    assert camera["codec"] == {
        "profile": "High", "level": "4.0", "width": 1920, "height": 1080, "fps": 25.0,
        "b_frames": True, "generation": 4,
    }  # fmt: skip
    assert camera["next_retry_at"] == "2026-11-18T11:06:41.000Z"  # 1_795_000_001_000 ms
    assert camera["node"] == "worker-2" and camera["waiting_for"] is None
    assert parsed["source_stats"]["METRO"]["usage_percent"] == 6.7
    assert parsed["snapshot_age_ms"] == 7 and parsed["timestamp"].endswith("Z")
    assert "البوابة" in raw.decode()  # UTF-8, as FastAPI writes it


async def test_the_etag_follows_the_data_not_the_clock() -> None:
    bodies = StatsBodies()
    first = await bodies.body(Snapshot(stats(CAMERA), 0.0))
    later = await bodies.body(Snapshot(stats(CAMERA, timestamp_ms=1_795_000_009_000), 1.0))
    assert later.etag == first.etag and later.timestamp != first.timestamp
    moved = CameraStat(**{**{f: getattr(CAMERA, f) for f in CAMERA.__slots__}, "viewer_count": 1})
    changed = await bodies.body(Snapshot(stats(moved), 2.0))
    assert changed.etag != first.etag


async def test_one_snapshot_is_rendered_once() -> None:
    bodies = StatsBodies()
    snapshot = Snapshot(stats(CAMERA), 0.0)
    assert await bodies.body(snapshot) is await bodies.body(snapshot)


def test_if_none_match_compares_weakly_and_takes_lists_and_star() -> None:
    tag = '"abc"'
    assert etag_matches('"abc"', tag)
    assert etag_matches('W/"abc"', tag)
    assert etag_matches('"x", W/"abc"', tag)
    assert etag_matches("*", tag)
    assert not etag_matches('"abd"', tag)
    assert not etag_matches(None, tag)
    assert not etag_matches("", tag)
