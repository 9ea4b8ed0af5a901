"""The REST API under hostile input, against a real ``serve`` process on real Valkey.

The clients are raw sockets, because the service answers 413 and closes while the
body is still arriving. A socket closed with unread data sends RST, not FIN; a client that
keeps writing then fails with EPIPE or ECONNRESET and, like most HTTP libraries, never reads
the answer it was sent. These clients stop writing once the socket is readable, read the
answer, and count a reset after a complete answer as the close (Linux still hands out the
data that arrived before a reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import select
import socket
import statistics
import struct
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from orchestrator.api.app import create_app
from orchestrator.api.route_policy import flat_routes, needs_key
from orchestrator.config import Settings
from tests.harness.constants import ADMIN_KEY, SAMPLE_IDS
from tests.harness.http import ADMIN_HEADERS
from tests.harness.metrics import scrape
from tests.harness.service import NewService, ServiceProcess
from tests.harness.waiting import eventually

MIB = 1 << 20
HUGE = 100 * MIB
BOUND = 2.0  # the service's header and body timeouts here
KEEP_ALIVE = 3  # the service's idle keep-alive bound here
SECONDS = 3.0  # bodies are sent in rounds for this long, /health probed all along
HTTP_COUNT = "cctv_http_request_duration_seconds_count"
Case = tuple[str, str, str | None, bool]  # method, path, key, chunked
Answer = tuple[int, str, int]  # status, error code, body bytes the client got to send


@pytest.fixture
async def service(new_service: NewService) -> AsyncIterator[ServiceProcess]:
    timeouts = {f"CCTV_HTTP_{n}_TIMEOUT_SECONDS": str(BOUND) for n in ("HEADER", "BODY")}
    keep_alive = {"CCTV_HTTP_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE)}
    async with new_service("hostile", **timeouts, **keep_alive) as proc:
        yield proc


def body_routes() -> list[tuple[str, str, bool]]:
    """(method, path, needs a key) of every POST/PUT/DELETE route under ``/api/v1``."""
    found = []
    for route in flat_routes(create_app(Settings()).routes):
        path = re.sub(r"\{(\w+)[^}]*\}", lambda m: SAMPLE_IDS.get(m[1], "x"), route.path)
        methods = (getattr(route, "methods", None) or set()) & {"POST", "PUT", "DELETE"}
        if path.startswith("/api/v1/"):
            found += [(method, path, needs_key(route)) for method in sorted(methods)]
    return found


def head(method: str, path: str, *, length: int | None, key: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    lines += [f"Authorization: Bearer {key}"] if key else []
    lines += ["Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def until_closed(sock: socket.socket) -> tuple[int, str]:
    """Read until the service closes (a reset after the answer is that close: it closed with
    body unread); the answer's status and error code. Fails if it does not close within 5 s."""
    sock.settimeout(5)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while more := sock.recv(65536):
            data += more
    _, _, body = data.partition(b"\r\n\r\n")
    return int(data.split()[1]), json.loads(body)["error"]["code"]


def send_huge(port: int, method: str, path: str, key: str | None, chunked: bool) -> Answer:
    """Try to send 100 MiB; stop once the service answers. The answer, and bytes sent."""
    unit = b"10000\r\n" + b"[" * 65536 + b"\r\n" if chunked else b"[" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head(method, path, length=None if chunked else HUGE, key=key))
        sock.setblocking(False)
        view, offset, sent = memoryview(unit), 0, 0
        while sent < HUGE:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                break  # the answer (or the close) is there: stop writing, read it
            assert writable, "the service neither reads the body nor answers"
            try:
                written = sock.send(view[offset:])
            except (BrokenPipeError, ConnectionResetError):
                break
            offset, sent = (offset + written) % len(unit), sent + written
        return *until_closed(sock), sent


async def test_huge_bodies_get_413_at_once_while_memory_and_health_hold(
    service: ServiceProcess,
) -> None:
    routes = body_routes()
    cases: list[Case] = [(m, p, None, chunked) for m, p, _ in routes for chunked in (False, True)]
    cases += [(m, p, ADMIN_KEY, True) for m, p, keyed in routes if keyed]
    latencies: list[float] = []
    rss: list[int] = []
    done = asyncio.Event()

    async def probe() -> None:  # /health from its own connection, all along
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
            while not done.is_set():
                started = time.perf_counter()
                assert (await http.get("/health")).status_code == 200
                latencies.append(time.perf_counter() - started)
                rss.append(service.rss_bytes())
                await asyncio.sleep(0.02)

    before = service.rss_bytes()
    prober = asyncio.create_task(probe())
    results: list[tuple[Case, Answer]] = []
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        sends = (asyncio.to_thread(send_huge, service.port, *case) for case in cases)
        results += zip(cases, await asyncio.gather(*sends), strict=True)
    done.set()
    await prober
    growth = max(rss) - before
    print(
        f"{len(results)} huge bodies; RSS {before / MIB:.1f} MiB, grew {growth / MIB:.1f} MiB; "
        f"/health median {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms over {len(latencies)}; most sent before the "
        f"answer {max(sent for _, (_, _, sent) in results) / MIB:.1f} MiB"
    )
    for (method, path, key, chunked), (status, code, sent) in results:
        assert (status, code) == (413, "BODY_TOO_LARGE"), (method, path, key, chunked)
        assert sent < HUGE / 4, (method, path, key, chunked, sent)
    assert growth < 20 * MIB
    assert statistics.median(latencies) < 0.1 and max(latencies) < 1.0


def trickle(port: int, prefix: bytes, slow: bytes) -> tuple[float, bytes]:
    """Send ``prefix``, then ``slow`` one byte a second (none: stay idle) until the service
    answers or closes: the seconds from the end of ``prefix`` to that, and what it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(prefix)
        started = time.monotonic()
        for i in range(30):
            with contextlib.suppress(OSError):  # closed meanwhile: the select below sees it
                sock.send(slow[i : i + 1])
            if select.select([sock], [], [], 1.0)[0]:
                break
        elapsed, answer = time.monotonic() - started, b""
        while more := sock.recv(65536):  # to the close
            answer += more
    return elapsed, answer


async def test_slow_headers_and_bodies_are_cut_off_at_their_bounds(service: ServiceProcess) -> None:
    put = head("PUT", "/api/v1/limits/METRO", length=64, key=ADMIN_KEY)
    chunked = head("PUT", "/api/v1/limits/METRO", length=None, key=ADMIN_KEY)
    cases = {
        "idle": (b"", b"", b""),
        "headers": (b"", put, b"HEADER_TIMEOUT"),
        "body": (put, b'{"limit": 7}'.ljust(64), b"BODY_TIMEOUT"),
        "chunked body": (chunked, b'40\r\n{"limit": 7}', b"BODY_TIMEOUT"),
    }
    slow = [asyncio.to_thread(trickle, service.port, p, s) for p, s, _ in cases.values()]
    trickling = asyncio.gather(*slow)
    served = 0
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as http:
        while not trickling.done():  # a normal client is served all along
            assert (await http.get("/health")).status_code == 200
            limit = await http.put("/api/v1/limits/BUS", json={"limit": 20}, headers=ADMIN_HEADERS)
            assert limit.status_code == 200, limit.text
            served += 2
            await asyncio.sleep(0.1)
    outcomes = dict(zip(cases, await trickling, strict=True))
    print("closed after", {name: round(s, 2) for name, (s, _) in outcomes.items()}, served)
    for name, (seconds, answer) in outcomes.items():
        assert BOUND - 0.3 < seconds < BOUND + 1.0, (name, seconds)
        assert cases[name][2] in answer, (name, answer)
        assert answer[:12] == (b"HTTP/1.1 408" if answer else b""), (name, answer)
    assert served >= 10  # about 2 a 0.1 s round while the slow ones hang on


def test_a_client_still_sending_reads_the_early_answer_not_a_reset(service: ServiceProcess) -> None:
    body = b"[" * (192 * 1024)  # over the body cap, within what the service drains after it
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(head("PUT", "/api/v1/limits/METRO", length=len(body), key=None) + body)
        time.sleep(0.5)  # the 413 is written while most of the body is still unread
        answer = b""
        while more := sock.recv(65536):  # a reset here is the defect: it may eat the answer
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"BODY_TOO_LARGE" in answer


def one_answer(sock: socket.socket) -> bytes:
    """Read exactly one answer (headers and ``Content-Length`` bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_an_idle_keep_alive_connection_is_reused_then_closed_at_its_bound(
    service: ServiceProcess,
) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(request)
        assert one_answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(KEEP_ALIVE / 3)  # idle, under the bound: the connection serves again
        sock.sendall(request)
        assert one_answer(sock).startswith(b"HTTP/1.1 200")
        idle_from = time.monotonic()
        assert sock.recv(65536) == b""  # the service closes it, once idle long enough
        idle = time.monotonic() - idle_from
    assert KEEP_ALIVE - 0.5 < idle < KEEP_ALIVE + 5, idle


async def test_headers_over_their_cap_get_431(service: ServiceProcess) -> None:
    def send() -> tuple[int, str]:  # httptools alone would buffer a header of any size
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 40_000)
            return until_closed(sock)

    assert await asyncio.to_thread(send) == (431, "HEADERS_TOO_LARGE")


def hang_up(port: int, request: bytes, *, reset: bool) -> None:
    """Send ``request`` (a body cut short), wait until the service reads it, and go away."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        time.sleep(0.3)
        if reset:  # RST rather than FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_a_hang_up_mid_body_logs_no_error_and_counts_no_5xx(service: ServiceProcess) -> None:
    partial = b'{"limit": 7'
    requests = [
        head("PUT", "/api/v1/limits/METRO", length=1000, key=ADMIN_KEY) + partial,
        head("PUT", "/api/v1/limits/METRO", length=None, key=ADMIN_KEY) + b"3e8\r\n" + partial,
        head("POST", "/api/v1/livekit/webhook", length=1000) + partial,
    ]
    for reset in (False, True):
        await asyncio.gather(
            *(asyncio.to_thread(hang_up, service.port, r, reset=reset) for r in requests)
        )
    statuses: list[tuple[str, float]] = []  # of every HTTP_COUNT sample: status, count

    async def all_counted() -> bool:  # as 499, "client closed request"
        statuses[:] = [
            (dict(labels)["status"], count)
            for (name, labels), count in (await scrape(http)).items()
            if name == HTTP_COUNT
        ]
        return sum(count for status, count in statuses if status == "499") == 2 * len(requests)

    async with httpx.AsyncClient(base_url=service.url, timeout=5) as http:
        await eventually(all_counted, 15, "every hang-up counted once, as a 499")
    assert not [s for s in statuses if s[0].startswith("5")], statuses
    log = service.log_path.read_text()
    assert '"level": "error"' not in log and "Traceback" not in log, service.log_tail()


async def test_unparseable_bodies_get_invalid_body_and_keyless_ones_401(
    service: ServiceProcess,
) -> None:
    bodies = {
        "invalid UTF-8": b'{"name": "\xff\xfe", "limit": 1}',
        "huge integer": b'{"limit": 1' + b"0" * 5000 + b"}",
        "deep nesting": b"[" * 30_000,
        "invalid JSON": b'{"limit": ',
    }
    callers = {f"Bearer {ADMIN_KEY}": (422, "INVALID_BODY"), "": (401, "UNAUTHORIZED"),
               "Bearer not-a-key": (401, "UNAUTHORIZED")}  # fmt: skip
    routes = [("POST", "/api/v1/stream/reserve"), ("PUT", "/api/v1/cameras/{camera_id}"),
              ("PUT", "/api/v1/limits/{source}")]  # fmt: skip
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as http:
        schema = (await http.get("/openapi.json")).json()
        for method, template in routes:
            documented = schema["paths"][template][method.lower()]["responses"]
            assert "INVALID_BODY" in documented["422"]["description"], documented
            for (name, body), (key, answer) in itertools.product(bodies.items(), callers.items()):
                headers = {"Content-Type": "application/json", "Authorization": key}
                path = template.format(**SAMPLE_IDS)
                response = await http.request(method, path, content=body, headers=headers)
                error = response.json()["error"]["code"]
                assert (response.status_code, error) == answer, (path, name, key)
