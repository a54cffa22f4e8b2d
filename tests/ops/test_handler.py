"""OpsHandler in an embedded server: the status page under saturation, the slow log, access
log timings, request timeouts (async and sync) and load shedding."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest

from smisk.runtime.embed import EmbeddedServer
from smisk.runtime.handler import ApplicationHandler
from smisk.runtime.ops import DEFAULT_MAX_QUEUE_TIME, OpsConfig, wrap_handler
from smisk.runtime.ops.handler import OpsHandler, parse_head
from tests.ops.support import (
    AsyncBlockingApp,
    AsyncGatedApp,
    Gate,
    gated,
    gated_line,
    get,
    serve,
    start_get,
    status_json,
)
from tests.support.fcgi_client import FastCGIClient
from tests.support.serving import wait_until

COMBINED = re.compile(
    r"(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" '
    r'"(?P<agent>[^"]*)" request_time=(?P<total>[\d.]+) queue_time=(?P<queue>[\d.]+) '
    r"handler_time=(?P<handler>[\d.]+)$"
)


def test_nothing_asked_means_no_wrapper() -> None:
    handler = ApplicationHandler(gated(Gate()), threads=2)
    try:
        assert wrap_handler(handler, None) is handler
        assert wrap_handler(handler, OpsConfig(max_queue_time=0)) is handler
        assert isinstance(wrap_handler(handler, OpsConfig()), OpsHandler)  # sheds by default
    finally:
        handler.close()


def test_response_heads_give_the_status() -> None:
    head = b"Status: 404 Not Found\r\nA: b\r\n\r\n"
    assert parse_head(head + b"body") == (404, len(head))
    head = b"Content-Type: x\r\nstatus:  201\r\n\r\n"
    assert parse_head(head) == (201, len(head))
    assert parse_head(b"Location: /x\r\n\r\n")[0] == 302
    assert parse_head(b"Content-Type: x\r\n\r\n")[0] == 200


async def test_status_answers_while_every_thread_is_blocked(tmp_path: Path) -> None:
    gate = Gate()
    sock = tmp_path / "app.sock"
    async with serve(gated(gate), sock, threads=2, status_path="/status", max_queue=10):
        blocked = [start_get(sock, "/block") for _ in range(3)]
        await asyncio.to_thread(gate.wait_entered, 2)
        status = await status_json(sock)
        try:
            assert status["threads"] == 2 and status["threads_busy"] == 2
            assert status["requests_in_flight"] >= 2
            assert status["workers"] == 1 and status["per_worker"][0]["threads_busy"] == 2
        finally:
            gate.open()
        for response in await asyncio.gather(*blocked):
            assert response.split()[1] == b"done /block\n"
        status = await status_json(sock, "/status?format=json")
        assert status["requests"] == 3 and status["responses_2xx"] == 3
        assert status["threads_exhausted"] >= 1  # the third found both threads busy
        assert status["requests_in_flight"] == 0 and status["threads_busy"] == 0


async def test_status_in_openmetrics(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    async with serve(gated(Gate()), sock, threads=2, status_path="/status"):
        await get(sock, "/hello")
        by_query = await get(sock, "/status?format=openmetrics")
        by_accept = await get(
            sock, "/status", HTTP_ACCEPT="application/openmetrics-text;version=1.0.0"
        )
    for response in (by_query, by_accept):
        headers, body = response.split()
        assert headers["content-type"].startswith("application/openmetrics-text")
        text = body.decode()
        assert text.endswith("# EOF\n")
        assert "\nsmisk_requests_total 1\n" in text
        assert re.search(r'\nsmisk_worker_requests_total\{pid="\d+"\} 1\n', text)


async def test_slow_log_shows_the_blocked_sync_frame(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate()
    sock = tmp_path / "app.sock"
    caplog.set_level(logging.WARNING, "smisk.slowlog")
    async with serve(gated(gate), sock, threads=2, slow_request_timeout=0.1):
        pending = start_get(sock, "/block")
        try:
            report = await asyncio.to_thread(wait_until, lambda: _slow_report(caplog))
        finally:
            gate.open()
        await pending
    line = gated_line("# GATED LINE")
    assert "slow request" in report and "GET /block" in report
    assert re.search(rf'support\.py", line {line}, in service\n\s+self\.gate\.wait\(\)', report)
    assert "in _run" not in report  # the server's own frames are cut off
    assert len([r for r in caplog.records if r.name == "smisk.slowlog"]) == 1  # once per request


async def test_slow_log_shows_the_awaiting_async_frame(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock = tmp_path / "app.sock"
    caplog.set_level(logging.WARNING, "smisk.slowlog")
    async with serve(AsyncGatedApp(), sock, slow_request_timeout=0.1, request_timeout=0.5):
        pending = start_get(sock, "/block")
        report = await asyncio.to_thread(wait_until, lambda: _slow_report(caplog))
        assert (await pending).split()[0]["status"].startswith("504")
    line = gated_line("# ASYNC GATED LINE")
    assert re.search(rf'support\.py", line {line}, in service', report), report
    assert "in wait" in report  # the innermost awaited coroutine (asyncio.Event.wait)


async def test_a_blocked_loop_is_reported_with_its_stack(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock = tmp_path / "app.sock"
    caplog.set_level(logging.WARNING, "smisk.slowlog")
    async with serve(AsyncBlockingApp(), sock, slow_request_timeout=0.2) as server:
        response = await get(sock, "/stall")  # the loop (this test's own) stalls 0.6 s
        assert response.split()[1] == b"done\n"
        watchdog = server._ops.watchdog if server._ops is not None else None
        assert watchdog is not None and watchdog.stalls == 1  # once per stall
    reports = _loop_reports(caplog)
    assert len(reports) == 1
    line = gated_line("# BLOCKING LINE")
    assert re.search(rf'support\.py", line {line}, in service\n\s+time\.sleep', reports[0])


async def test_awaiting_handlers_do_not_trip_the_watchdog(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock = tmp_path / "app.sock"
    caplog.set_level(logging.WARNING, "smisk.slowlog")
    async with serve(AsyncBlockingApp(), sock, slow_request_timeout=0.2) as server:
        await asyncio.gather(*(get(sock, "/wait") for _ in range(5)))
        assert server._ops is not None and server._ops.watchdog is not None
        assert server._ops.watchdog.stalls == 0
    assert _loop_reports(caplog) == []
    assert len([r for r in caplog.records if "slow request" in r.getMessage()]) == 5


def _loop_reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = (record.getMessage() for record in caplog.records)
    return [message for message in messages if "event loop blocked" in message]


def _slow_report(caplog: pytest.LogCaptureFixture) -> str | None:
    for record in caplog.records:
        if record.name == "smisk.slowlog":
            return record.getMessage()
    return None


async def test_access_log_splits_queue_wait_from_handler_time(tmp_path: Path) -> None:
    gate = Gate()
    sock, log_file = tmp_path / "app.sock", tmp_path / "access.log"
    async with serve(
        gated(gate), sock, threads=1, access_log="combined", access_log_file=str(log_file)
    ) as server:
        first = start_get(sock, "/block")
        await asyncio.to_thread(gate.wait_entered, 1)
        second = start_get(sock, "/after")
        await asyncio.to_thread(_wait_queued, server)
        gate.open()
        await asyncio.gather(first, second)
    lines = log_file.read_text().splitlines()
    parsed = {m["request"]: m for m in map(COMBINED.match, lines) if m}
    assert len(parsed) == len(lines) == 2, lines
    after = parsed["GET /after HTTP/1.1"]
    assert after["status"] == "200" and int(after["bytes"]) == len("done /after\n")
    block = parsed["GET /block HTTP/1.1"]
    # /block found the thread free; /after waited for it to finish /block
    assert float(block["queue"]) < float(after["queue"])
    assert float(block["handler"]) >= float(after["handler"])


def _wait_queued(server: EmbeddedServer, count: int = 1) -> None:
    ops = server.ops
    assert ops is not None and ops.pool is not None
    wait_until(lambda: ops.pool is not None and ops.pool.queued >= count, what="a queued request")


async def test_json_access_log_keys(tmp_path: Path) -> None:
    sock, log_file = tmp_path / "app.sock", tmp_path / "access.log"
    async with serve(gated(Gate()), sock, access_log="json", access_log_file=str(log_file)):
        await get(sock, "/x?y=1", HTTP_USER_AGENT="probe", HTTP_X_REQUEST_ID="abc")
    entry = json.loads(log_file.read_text())
    assert entry["method"] == "GET" and entry["uri"] == "/x?y=1" and entry["status"] == 200
    assert entry["user_agent"] == "probe" and entry["request_id"] == "abc"
    for key in ("time", "remote_addr", "body_bytes", "request_time", "queue_time", "pid"):
        assert key in entry
    assert entry["handler_time"] >= 0 and entry["queue_time"] >= 0


async def test_request_timeout_cancels_an_async_handler(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    async with serve(AsyncGatedApp(), sock, request_timeout=0.2, status_path="/status") as server:
        response = await get(sock, "/block")
        headers, body = response.split()
        assert headers["status"].startswith("504") and body == b"504 Gateway Timeout\n"
        assert server.ops is not None
        await asyncio.to_thread(wait_until, lambda: not server.ops.flights)  # cancelled
        status = await status_json(sock)
        assert status["timed_out_requests"] == 1 and status["responses_5xx"] == 1


async def test_request_timeout_answers_a_stuck_sync_handler_and_drops_its_output(
    tmp_path: Path,
) -> None:
    gate = Gate()
    sock = tmp_path / "app.sock"
    async with serve(gated(gate), sock, threads=1, request_timeout=0.2) as server:
        with FastCGIClient(str(sock), timeout=20) as client:
            env = {"REQUEST_URI": "/block", "SCRIPT_NAME": "/block"}
            first = await asyncio.to_thread(client.request, params=env)
            assert first.split()[0]["status"].startswith("504")
            gate.open()  # the thread now writes its late answer...
            assert server.ops is not None
            await asyncio.to_thread(wait_until, lambda: not server.ops.flights)
            # ...which must not reach the next request on this connection (same id)
            env = {"REQUEST_URI": "/next", "SCRIPT_NAME": "/next"}
            second = await asyncio.to_thread(client.request, params=env)
        assert second.split()[1] == b"done /next\n"
        assert b"/block" not in bytes(second.stdout)


async def test_a_request_that_times_out_while_queued_never_runs(tmp_path: Path) -> None:
    gate = Gate()
    sock = tmp_path / "app.sock"
    async with serve(gated(gate), sock, threads=1, request_timeout=0.3):
        blocker = start_get(sock, "/block")
        await asyncio.to_thread(gate.wait_entered, 1)
        queued = await get(sock, "/block")
        assert queued.split()[0]["status"].startswith("504")
        gate.open()
        await blocker
        assert gate.entered == 1  # the queued one was dropped, not run


async def test_overload_sheds_with_503_and_retry_after(tmp_path: Path) -> None:
    gate = Gate()
    sock = tmp_path / "app.sock"
    async with serve(gated(gate), sock, threads=1, max_queue=1, status_path="/status") as server:
        running = start_get(sock, "/block")
        await asyncio.to_thread(gate.wait_entered, 1)
        waiting = start_get(sock, "/block")
        await asyncio.to_thread(_wait_queued, server)
        shed = await get(sock, "/block")
        status = await status_json(sock)
        gate.open()
        await asyncio.gather(running, waiting)
    headers, _ = shed.split()
    assert headers["status"].startswith("503") and headers["retry-after"] == "1"
    assert shed.protocol_status == 0  # REQUEST_COMPLETE, not OVERLOADED
    assert status["shed"] == 1 and status["requests_queued"] == 1


async def test_shedding_alone_serves_and_sheds_sync_requests_without_tasks(
    tmp_path: Path,
) -> None:
    gate = Gate()
    sock = tmp_path / "app.sock"
    async with serve(gated(gate), sock, threads=1, max_queue=1) as server:
        served = server.server
        running = start_get(sock, "/block")
        await asyncio.to_thread(gate.wait_entered, 1)
        waiting = start_get(sock, "/block")
        await asyncio.to_thread(_wait_queued, server)
        assert len(served.direct) == 2 and not served.tasks
        shed = await get(sock, "/block")
        gate.open()
        answered = await asyncio.gather(running, waiting)
    assert shed.split()[0]["status"].startswith("503")
    assert [response.split()[1] for response in answered] == [b"done /block\n"] * 2
    assert served.stats.requests_finished == 3 and not served.direct


async def test_shedding_alone_adds_no_timer_or_log_thread(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    async with serve(gated(Gate()), sock, threads=2) as server:
        assert server.ops is not None and server.ops.writer is None
        assert (server.ops.max_queue, server.ops.max_queue_time) == (0, DEFAULT_MAX_QUEUE_TIME)
        assert (await get(sock, "/x")).split()[1] == b"done /x\n"
        assert server.ops._timer is None
