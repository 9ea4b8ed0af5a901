"""The monitoring material in deploy/ against the real Prometheus tools.

* ``promtool`` checks the alert rules and the example configuration and runs the rule unit
  tests (``deploy/prometheus/alerts_test.yml``: every alert fires and stays silent).
* The Grafana dashboard and the rules use only metric names the service exposes (static).
* A real ``serve`` (no pushers, no LiveKit) on the real Valkey takes reservations and one quota
  rejection; its ``/metrics`` passes ``promtool check metrics`` with no lint output.
* A real Prometheus, configured from ``deploy/prometheus/prometheus.yml`` (targets and intervals
  swapped for the test), scrapes that service, loads and evaluates ``alerts.yml`` without
  errors, answers the dashboard's queries, and its query API sees the reservations made.

The binaries come from Debian's ``prometheus`` package (``tests/prometheus_tools.py`` installs
it when root and missing); without them these tests fail, never skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from redis.asyncio import Redis

from orchestrator.store.cameras import CameraRegistry
from tests.harness.constants import REPO_ROOT
from tests.harness.http import admit, reserve
from tests.harness.metrics import parse
from tests.harness.service import NewService, ServiceProcess, free_port
from tests.harness.store import add_cameras
from tests.harness.waiting import eventually
from tests.prometheus_tools import PrometheusTools, prometheus_tools

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "cctv-orchestrator.json"
JOB = "cctv-orchestrator"

# What the service exposes; histograms are exposed as _bucket, _sum and _count.
COUNTERS_AND_GAUGES = frozenset(
    {
        "cctv_reservations_active",
        "cctv_source_limit",
        "cctv_pushers",
        "cctv_pushers_waiting",
        "cctv_camera_viewers",
        "cctv_state_read_ok",
        "cctv_stats_key_tracking",
        "cctv_reservations_total",
        "cctv_quota_rejections_total",
        "cctv_pusher_starts_total",
        "cctv_pusher_restarts_total",
        "cctv_reconcile_corrections_total",
        "cctv_webhooks_total",
        "cctv_dependency_errors_total",
        "cctv_livekit_requests_total",
        "cctv_livekit_errors_total",
    }
)
HISTOGRAMS = frozenset(
    {
        "cctv_pusher_start_seconds",
        "cctv_http_request_duration_seconds",
        "cctv_livekit_request_seconds",
    }
)
EXPOSED = COUNTERS_AND_GAUGES | {
    f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
}
PROMETHEUS_OWN = frozenset({"up"})  # written by Prometheus for every target

ALERT_RUNBOOKS = {
    "CctvQuotaNearLimit": "quota-near-limit",
    "CctvGlobalQuotaNearLimit": "quota-near-limit",
    "CctvPusherCrashLoop": "pusher-crash-loop",
    "CctvPusherFailed": "pusher-crash-loop",
    "CctvPushersWaitingForCapacity": "swarm-pending",
    "CctvReconcileDrift": "reconcile-drift",
    "CctvDependencyDown": "dependency-down",
    "CctvStateUnreadable": "dependency-down",
    "CctvStatsKeyTrackingDown": "stats-key-tracking",
    "CctvWebhookSignatureFailures": "webhook-signature-failures",
    "CctvOrchestratorDown": "orchestrator-down",
}

# Panels the dashboard must have, by the series they read.
DASHBOARD_MUST_READ = frozenset(
    {
        "cctv_reservations_active",
        "cctv_source_limit",
        "cctv_pushers",
        "cctv_camera_viewers",
        "cctv_reservations_total",
        "cctv_quota_rejections_total",
        "cctv_pusher_starts_total",
        "cctv_pusher_start_seconds_bucket",
        "cctv_pusher_restarts_total",
        "cctv_reconcile_corrections_total",
        "cctv_webhooks_total",
        "cctv_dependency_errors_total",
        "cctv_http_request_duration_seconds_bucket",
        "cctv_livekit_errors_total",
    }
)

# Reservations the scraped service holds: 3 METRO + 2 BUS (BUS is then full: one 429).
SCRAPED_LIMITS = {"METRO": 40, "BUS": 2, "TOTAL": 50}
RESERVED = {"METRO": 3, "BUS": 2}
LIVENESS_SECONDS = 60.0


def run(tools_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools_path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.fixture(scope="module")
def tools() -> PrometheusTools:
    try:
        return prometheus_tools()
    except AssertionError as exc:  # missing and not installable here: fail, never skip
        pytest.fail(str(exc), pytrace=False)


# --- promtool on the deploy/ files -----------------------------------------------------------


def test_alert_rules_pass_promtool_check(tools: PrometheusTools) -> None:
    result = run(tools.promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, explain(result)
    assert f"SUCCESS: {len(ALERT_RUNBOOKS)} rules found" in result.stdout, explain(result)


def test_alert_rule_unit_tests_pass(tools: PrometheusTools) -> None:
    result = run(tools.promtool, "test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, explain(result)
    assert "SUCCESS" in result.stdout, explain(result)


def test_example_config_passes_promtool_check(tools: PrometheusTools, tmp_path: Path) -> None:
    """rule_files resolves beside the config (a copy in tmp proves it is self-contained)."""
    shutil.copy(CONFIG, tmp_path / CONFIG.name)
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    result = run(tools.promtool, "check", "config", str(tmp_path / CONFIG.name))
    assert result.returncode == 0, explain(result)
    assert "SUCCESS: 1 rule files found" in result.stdout, explain(result)
    assert f"SUCCESS: {len(ALERT_RUNBOOKS)} rules found" in result.stdout, explain(result)


# --- static checks: names, labels, annotations -------------------------------------------------

_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][\w:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression selects (simple: strips strings, matchers, ranges,
    grouping clauses, then keeps identifiers that are neither functions nor keywords)."""
    text = _STRING.sub('""', expr)
    for pattern in (_MATCHERS, _RANGE, _GROUPING):
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{route!="/a{b}"}[5m]))) '
        "/ on (route) group_left max without (instance) (y) > bool 1e3 and topk(20, z offset 5m)"
    )
    assert metric_names(expr) == {"x_bucket", "y", "z"}


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))  # rows hold their own


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def test_dashboard_reads_only_exposed_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "cctv-orchestrator"
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"

    every = list(dashboard_panels(dashboard["panels"]))
    assert len({p["id"] for p in every}) == len(every), "panel ids are unique"
    panels = [p for p in every if p["type"] != "row"]
    read: set[str] = set()
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            unknown = names - EXPOSED - PROMETHEUS_OWN
            assert not unknown, f"panel {panel['title']!r} reads unknown series {unknown}"
            assert names, f"panel {panel['title']!r}: no series in {target['expr']!r}"
            read |= names
    assert read >= DASHBOARD_MUST_READ, f"no panel reads {DASHBOARD_MUST_READ - read}"


def test_alert_rules_read_exposed_metrics_and_link_their_runbook() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert [g["name"] for g in groups] == [JOB]
    rules = {rule["alert"]: rule for rule in groups[0]["rules"]}
    assert set(rules) == set(ALERT_RUNBOOKS)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{ALERT_RUNBOOKS[name]}"
        unknown = metric_names(rule["expr"]) - EXPOSED - PROMETHEUS_OWN
        assert not unknown, f"{name} reads unknown series {unknown}"
    # the unit tests show every alert firing in one case and silent in another
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fires == silent == set(ALERT_RUNBOOKS)


# --- a real service, scraped -----------------------------------------------------------------


@dataclass
class Scraped:
    service: ServiceProcess
    reserved: int


@pytest.fixture
async def scraped(client: Redis, new_service: NewService) -> AsyncIterator[Scraped]:
    """A real ``serve`` holding RESERVED reservations and having refused one over quota."""
    async with new_service("scraped", CCTV_SOURCE_LIMITS=json.dumps(SCRAPED_LIMITS)) as service:
        await add_cameras(CameraRegistry(client), "cam-prom-1", "cam-prom-2")
        for source, count in RESERVED.items():
            for i in range(count):
                await admit(service.http, f"cam-prom-{i % 2 + 1}", source)
        refused = await reserve(service.http, "cam-prom-1", "BUS")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "AGENCY_LIMIT_EXCEEDED"
        yield Scraped(service, sum(RESERVED.values()))


async def test_service_metrics_pass_promtool_lint(tools: PrometheusTools, scraped: Scraped) -> None:
    response = await scraped.service.http.get("/metrics")
    assert response.status_code == 200
    active = {
        dict(labels)["source"]: sample
        for (name, labels), sample in parse(response.text).items()
        if name == "cctv_reservations_active"
    }
    assert active == RESERVED, "the linted exposition holds the test's reservations"

    result = run(tools.promtool, "check", "metrics", stdin=response.text)
    assert result.returncode == 0 and not result.stdout and not result.stderr, (
        f"promtool check metrics found problems in /metrics:\n{explain(result)}"
    )


def scrape_config(tmp: Path, target: str) -> Path:
    """deploy/prometheus/prometheus.yml scraping ``target`` every second, alerts.yml beside."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB and job["metrics_path"] == "/metrics"
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": [target]}]
    shutil.copy(ALERTS, tmp / ALERTS.name)
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def api(http: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await http.get(path, params=params)
    assert response.status_code == 200, f"{path} {params}: {response.status_code} {response.text}"
    payload = response.json()
    assert payload["status"] == "success", payload
    return payload["data"]


async def test_real_prometheus_scrapes_the_service_and_evaluates_the_rules(
    tools: PrometheusTools, scraped: Scraped, tmp_path: Path
) -> None:
    work = tmp_path / "prometheus"
    work.mkdir()
    config = scrape_config(work, f"127.0.0.1:{scraped.service.port}")
    port = free_port()
    log_path = work / "prometheus.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                str(tools.prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def ready() -> bool:
                assert server.poll() is None, f"prometheus exited with {server.returncode}"
                try:
                    return (await http.get("/-/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(ready, LIVENESS_SECONDS, "prometheus answers /-/ready", 0.1)

            query = "sum(max by (source) (cctv_reservations_active))"
            seen: list[Any] = []

            async def reservations_visible() -> bool:
                result = (await api(http, "/api/v1/query", query=query))["result"]
                seen[:] = result
                return len(result) == 1 and float(result[0]["value"][1]) == scraped.reserved

            try:
                waited = await eventually(
                    reservations_visible, LIVENESS_SECONDS, f"{query} = {scraped.reserved}", 0.2
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last result {seen}") from None
            print(f"prometheus saw the {scraped.reserved} reservations after {waited:.2f} s")

            targets = (await api(http, "/api/v1/targets", state="active"))["activeTargets"]
            ours = [t for t in targets if t["labels"].get("job") == JOB]
            assert len(ours) == 1, targets
            assert ours[0]["health"] == "up", ours[0]
            assert ours[0]["scrapeUrl"] == f"{scraped.service.url}/metrics"

            # Every alert rule loaded and evaluated against the live series without error.
            async def rules_evaluated() -> bool:
                groups = (await api(http, "/api/v1/rules", type="alert"))["groups"]
                rules = [rule for group in groups for rule in group["rules"]]
                assert {g["name"] for g in groups} == {JOB}
                assert {r["name"] for r in rules} == set(ALERT_RUNBOOKS)
                bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
                assert not bad, f"alert rules failed to evaluate: {bad}"
                return all(r["health"] == "ok" for r in rules)

            await eventually(rules_evaluated, LIVENESS_SECONDS, "every alert rule evaluated", 0.2)

            # BUS holds 2 of 2: CctvQuotaNearLimit goes pending for BUS (it fires after 5
            # minutes); METRO (3/40) and the global limit (5/50) stay quiet, as does the rest.
            alerts: list[Any] = []

            async def bus_quota_pending() -> bool:
                alerts[:] = (await api(http, "/api/v1/alerts"))["alerts"]
                return bool(alerts)

            await eventually(bus_quota_pending, LIVENESS_SECONDS, "an alert for BUS", 0.2)
            assert [(a["labels"], a["state"]) for a in alerts] == [
                (
                    {"alertname": "CctvQuotaNearLimit", "severity": "warning", "source": "BUS"},
                    "pending",
                )
            ], alerts
            assert alerts[0]["annotations"]["summary"] == "Source BUS uses 100% of its viewer quota"

            # Every dashboard query parses and evaluates on this Prometheus version.
            for title, expr in dashboard_exprs():
                response = await http.get("/api/v1/query", params={"query": expr})
                assert response.status_code == 200, f"{title}: {expr}\n{response.text}"
    except BaseException:
        print(f"--- prometheus log ({log_path}) ---\n{log_path.read_text(errors='replace')}")
        raise
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
