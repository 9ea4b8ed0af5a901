"""Every in-process Prometheus metric, defined once (the shared-state gauges: state_metrics.py).

These count what *this* replica did (reserves it answered, pushers it started, corrections it
made); sum them over replicas in PromQL. Label values are bounded: results and kinds are
fixed words, sources pass the identifier pattern and an authorized key, routes are templates.
Nothing secret ever becomes a label.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from orchestrator.errors import OrchestratorError, QuotaExceeded, TemporaryError

SYNC_STEPS = ("ghost_removal", "listing", "ingress_listing", "orphan_ingress")
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STATS_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def reserve_result(exc: BaseException | None) -> str:
    """``admitted``, ``quota_exceeded``, ``rejected`` (4xx: unknown camera, forbidden...) or
    ``error`` (a dependency failed or a bug)."""
    if exc is None:
        return "admitted"
    if isinstance(exc, QuotaExceeded):
        return "quota_exceeded"
    if isinstance(exc, TemporaryError) or not isinstance(exc, OrchestratorError):
        return "error"
    return "rejected"


class ServiceMetrics:
    """``runtime``: the pusher runtime in use (``docker``), the ``dependency`` label of its
    errors."""

    def __init__(self, registry: CollectorRegistry | None, *, runtime: str = "docker") -> None:
        r = registry
        self.reservations = Counter(
            "cctv_reservations", "Reserve requests by source and result.",
            ["source", "result"], registry=r,
        )  # fmt: skip
        self.quota_rejections = Counter(
            "cctv_quota_rejections", "Reserves refused by a source or TOTAL limit.",
            ["source"], registry=r,
        )  # fmt: skip
        self.pusher_starts = Counter(
            "cctv_pusher_starts", "Pusher starts by result (running, failed, stale).",
            ["result"], registry=r,
        )  # fmt: skip
        self.pusher_start_seconds = Histogram(
            "cctv_pusher_start_seconds", "From the start claim to the pusher marked RUNNING.",
            buckets=START_BUCKETS, registry=r,
        )  # fmt: skip
        self.pusher_restarts = Counter(
            "cctv_pusher_restarts", "Starts of a camera whose pusher had failed.", registry=r
        )
        self.reconcile_corrections = Counter(
            "cctv_reconcile_corrections",
            "Drift the reconcile passes corrected, by kind (orphan, dead, missing, start, "
            "ghost, orphan_ingress, presence_joined, presence_left).",
            ["kind"], registry=r,
        )  # fmt: skip
        self.sync_failures = Counter(
            "cctv_livekit_sync_failures",
            "Steps of the LiveKit pass that failed and are retried on the next pass, by step "
            "(ghost_removal, listing, ingress_listing, orphan_ingress).",
            ["step"], registry=r,
        )  # fmt: skip
        self.loop_passes = Counter(
            "cctv_loop_passes", "Completed passes of the service's periodic loops, by loop "
            "(expire-leases, pusher-tick, reconcile, livekit-sync, ...): a stalled loop stops "
            "counting.", ["loop"], registry=r,
        )  # fmt: skip
        self.leases_expired = Counter(
            "cctv_leases_expired", "Leases released because their heartbeats stopped.",
            registry=r,
        )  # fmt: skip
        self.webhooks = Counter(
            "cctv_webhooks",
            "LiveKit webhooks by event and result (applied, duplicate, stale, ignored, "
            "unknown, rejected).",
            ["event", "result"], registry=r,
        )  # fmt: skip
        self.dependency_errors = Counter(
            "cctv_dependency_errors",
            "Operations that failed because a dependency (valkey, the pusher runtime by "
            "name: docker, livekit) was unreachable or timing out.",
            ["dependency"], registry=r,
        )  # fmt: skip
        self.stats_reads = Histogram(
            "cctv_stats_read_seconds", "Stats snapshots read from Valkey by this replica (at "
            "most one per CCTV_STATS_MAX_AGE_SECONDS, whatever the number of pollers).",
            buckets=STATS_BUCKETS, registry=r,
        )  # fmt: skip
        self.key_tracking = Gauge(
            "cctv_stats_key_tracking", "1 while this replica's key tracking connection is up "
            "(stats snapshots read only the cameras that changed); 0 while every snapshot "
            "reads every camera (see the runbook).", registry=r,
        )  # fmt: skip
        self.http_seconds = Histogram(
            "cctv_http_request_duration_seconds", "HTTP requests by method, route template "
            "and status.", ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        # Labelled children of the per-request series, kept: ``labels()`` takes a lock and
        # validates on every call, and these run on every request.
        self._children: dict[tuple[str, ...], Any] = {}
        for dependency in ("valkey", runtime, "livekit"):
            self.dependency_errors.labels(dependency)  # present at 0 from the first scrape
        self.pusher_restarts.inc(0)
        for step in SYNC_STEPS:
            self.sync_failures.labels(step)

    def reserve(self, source: str, exc: BaseException | None) -> None:
        """``source``: a bounded label (``StreamService`` folds unconfigured sources)."""
        result = reserve_result(exc)
        key = ("reserve", source, result)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.reservations.labels(source, result)
        child.inc()
        if isinstance(exc, QuotaExceeded):
            self.quota_rejections.labels(source).inc()

    def pusher_start(self, result: str, seconds: float | None = None) -> None:
        self.pusher_starts.labels(result).inc()
        if seconds is not None:
            self.pusher_start_seconds.observe(seconds)

    def stats_read(self, seconds: float) -> None:
        self.stats_reads.observe(seconds)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.http_seconds.labels(*key)
        child.observe(seconds)

    def loop_pass(self, loop: str) -> None:
        self.loop_passes.labels(loop).inc()

    def corrected(self, kind: str, count: int = 1) -> None:
        if count:
            self.reconcile_corrections.labels(kind).inc(count)

    def webhook(self, event_label: str, result: str) -> None:
        """``event_label``: a bounded name (``livekit.webhooks.event_label``)."""
        self.webhooks.labels(event_label, result).inc()

    def dependency_error(self, exc: BaseException) -> None:
        """Count ``exc`` when it is a dependency failure (a ``TemporaryError``)."""
        if isinstance(exc, TemporaryError):
            self.dependency_errors.labels(exc.dependency).inc()


class LiveKitMetrics:
    """The LiveKit adapter's own view: every call and every failed attempt."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        op, r = "operation", registry
        self.requests = Counter(
            "cctv_livekit_requests", "LiveKit calls by outcome.", [op, "outcome"], registry=r
        )
        self.errors = Counter(
            "cctv_livekit_errors", "Failed LiveKit attempts by kind.", [op, "kind"], registry=r
        )
        self.seconds = Histogram(
            "cctv_livekit_request_seconds", "LiveKit call time, retries included.", [op],
            registry=r,
        )  # fmt: skip
