"""Load shedding by queueing time: a burst to a fast handler is served in full, a saturated
slow handler answers new requests 503 at once, and the queue's drain estimate."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from smisk.runtime.ops import DEFAULT_MAX_QUEUE_TIME, OpsConfig
from smisk.runtime.ops.handler import ObservedPool
from smisk.runtime.ops.status import SHED, CounterBlock
from tests.ops.support import Gate, gated, get, serve, start_get, status_json
from tests.support.fcgi_client import request_bytes
from tests.support.serving import wait_until

BURST = 400  # clients at once: 200 per thread, far beyond any fixed queue length per thread
STDOUT, END_REQUEST = 6, 3


async def _one(sock: Path, ready: asyncio.Event) -> bytes:
    """Connect, wait until every client is connected, send one GET, read to the close."""
    reader, writer = await asyncio.open_unix_connection(str(sock))
    try:
        await ready.wait()
        params = {"REQUEST_URI": "/fast", "SCRIPT_NAME": "/fast"}
        writer.write(request_bytes(1, params, keep_conn=False))
        return await reader.read()
    finally:
        writer.close()


async def _burst(sock: Path, count: int) -> list[bytes]:
    """``count`` connections opened first, then all requests sent in the same loop pass."""
    ready = asyncio.Event()
    jobs = [asyncio.ensure_future(_one(sock, ready)) for _ in range(count)]
    await asyncio.sleep(0)  # every job runs up to its connect
    ready.set()
    return await asyncio.wait_for(asyncio.gather(*jobs), 60)


def _stdout(reply: bytes) -> bytes:
    out, pos = b"", 0
    while pos < len(reply):
        _, kind, _, length, padding = struct.unpack_from(">BBHHBx", reply, pos)
        if kind == STDOUT:
            out += reply[pos + 8 : pos + 8 + length]
        pos += 8 + length + padding
    return out


async def test_a_burst_to_a_fast_handler_is_served_in_full(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    async with serve(gated(Gate()), sock, threads=2) as server:
        assert server.ops is not None and server.ops.pool is not None
        # The clients run on a loop of their own, so the burst arrives as fast as it is sent.
        replies = await asyncio.to_thread(asyncio.run, _burst(sock, BURST))
        assert server.ops.slot[SHED] == 0
    bodies = [_stdout(reply) for reply in replies]
    assert sum(b"Status: 503" in body for body in bodies) == 0
    assert len(bodies) == BURST and all(body.endswith(b"done /fast\n") for body in bodies)


async def test_a_saturated_slow_handler_sheds_new_requests_at_once(tmp_path: Path) -> None:
    gate = Gate()
    sock = tmp_path / "app.sock"
    limit = 0.2
    async with serve(gated(gate), sock, threads=1, max_queue_time=limit, status_path="/status") as (
        server
    ):
        assert server.ops is not None
        pool = server.ops.pool
        assert pool is not None
        running = start_get(sock, "/block")
        await asyncio.to_thread(gate.wait_entered, 1)
        waiting = start_get(sock, "/block")
        # Overloaded once the waiting request is older than the limit; the thread stays blocked.
        await asyncio.to_thread(wait_until, lambda: pool.overloaded(0, limit), what="overload")
        shed = await get(sock, "/block")  # answered while the only thread is still blocked
        assert gate.entered == 1
        status = await status_json(sock)
        gate.open()
        served = await asyncio.gather(running, waiting)
    headers, body = shed.split()
    assert headers["status"].startswith("503") and headers["retry-after"] == "1"
    assert body == b"503 Service Unavailable\n" and shed.protocol_status == 0
    assert [r.split()[1] for r in served] == [b"done /block\n"] * 2
    assert status["shed"] == 1


def test_a_queue_that_would_take_too_long_to_drain_is_overloaded() -> None:
    gate = Gate()
    pool = ObservedPool(1, "shed-test", CounterBlock(1).slot(1))
    loop = asyncio.new_event_loop()
    try:
        pool.run(loop, gate.wait)
        loop.run_until_complete(asyncio.sleep(0))  # the pass ends: the thread gets the work
        gate.wait_entered(1)
        pool.service_time = 10.0  # handlers take 10 s each: two waiting requests take 20 s
        for _ in range(2):
            pool.run(loop, lambda: None)
        assert not pool.overloaded(0, 30.0)
        for _ in range(2):
            pool.run(loop, lambda: None)
        assert pool.overloaded(0, 30.0)  # four take 40 s
        assert pool.overloaded(3, 0.0) and not pool.overloaded(0, 0.0)  # count cap alone
    finally:
        gate.open()
        pool.shutdown(wait=True)
        loop.close()


def test_work_free_threads_are_about_to_take_is_not_waiting() -> None:
    # A burst read in one loop pass reaches the threads at the pass's end: until then it is
    # queued, yet only what exceeds the free threads waits for one.
    gate = Gate()
    pool = ObservedPool(3, "shed-test", CounterBlock(1).slot(1))
    loop = asyncio.new_event_loop()
    try:
        for _ in range(3):
            pool.run(loop, gate.wait)
        assert pool.queued == 3 and not pool.overloaded(1, 0.0)
        pool.run(loop, gate.wait)
        assert pool.overloaded(1, 0.0)  # the fourth has no thread to go to
        loop.run_until_complete(asyncio.sleep(0))
        gate.wait_entered(3)
        assert pool.busy == 3 and pool.overloaded(1, 0.0)
    finally:
        gate.open()
        pool.shutdown(wait=True)
        loop.close()


def test_shedding_by_time_is_the_default() -> None:
    config = OpsConfig()
    assert config.max_queue_time == DEFAULT_MAX_QUEUE_TIME and not config.max_queue
    assert config.sheds and not OpsConfig(max_queue_time=0).sheds
    assert OpsConfig(max_queue_time=0, max_queue=5).sheds
