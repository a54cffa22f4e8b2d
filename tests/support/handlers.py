"""Handlers for the server's internal interface, routed by path; used by the conformance tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from smisk.server import RequestCycle

TEXT = b"Content-Type: text/plain\r\n"
NOKEEP_PREFIX = "/nokeep"  # tests/support/nginx.py's location without keep-alive: same routes

Route = Callable[[RequestCycle, dict[str, list[str]]], Awaitable[None]]
ROUTES: dict[str, Route] = {}
EVENTS: list[str] = []  # what handlers observed (aborts), for tests running in-process
# Gates for /hold, /release and /barrier, per event loop (each test server has its own loop).
_GATES: dict[tuple[int, str], asyncio.Event] = {}
_ARRIVALS: dict[tuple[int, str], int] = {}


def route(path: str) -> Callable[[Route], Route]:
    def register(func: Route) -> Route:
        ROUTES[path] = func
        return func

    return register


async def router(cycle: RequestCycle) -> None:
    params = cycle.params_dict()
    path, _, query = params.get("REQUEST_URI", "/").partition("?")
    path = path.removeprefix(NOKEEP_PREFIX) if path.startswith(NOKEEP_PREFIX + "/") else path
    handler = ROUTES.get(path, not_found)
    await handler(cycle, parse_qs(query))


async def not_found(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    cycle.end(b"Status: 404 Not Found\r\n" + TEXT + b"\r\nnot found\n")


@route("/hello")
async def hello(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    cycle.end(TEXT + b"Content-Length: 12\r\n\r\nHello World!")


@route("/echo")
async def echo(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    body = await cycle.body.read_all()
    cycle.end(TEXT + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


@route("/echo-stream")
async def echo_stream(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    length = cycle.params_dict().get("CONTENT_LENGTH", "0")
    await cycle.write(TEXT + f"Content-Length: {length}\r\n\r\n".encode())
    while chunk := await cycle.body.read(65536):
        await cycle.write(chunk)


@route("/sha256")
async def sha256(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    digest = hashlib.sha256()
    size = 0
    while chunk := await cycle.body.read(1 << 16):
        digest.update(chunk)
        size += len(chunk)
    cycle.end(TEXT + b"\r\n" + f"{size} {digest.hexdigest()}".encode())


def pattern(size: int) -> bytes:
    """The bytes /big sends: 0, 1, ..., 255 repeated."""
    return pattern_at(0, size)


def pattern_at(offset: int, length: int) -> bytes:
    """``pattern(offset + length)[offset:]`` without building the whole prefix."""
    start = offset % 256
    block = bytes(range(256)) * ((start + length) // 256 + 1)
    return block[start : start + length]


@route("/big")
async def big(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    size = int(query.get("n", ["100000"])[0])
    chunk = int(query.get("chunk", [str(size or 1)])[0])
    await cycle.write(
        b"Content-Type: application/octet-stream\r\n" + f"Content-Length: {size}\r\n\r\n".encode()
    )
    # Each chunk is made when it is written: the handler itself holds one chunk, so the
    # server's own buffering is what a memory measurement sees.
    for start in range(0, size, chunk):
        await cycle.write(pattern_at(start, min(chunk, size - start)))


@route("/params")
async def params(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    pairs = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in cycle.params]
    body = json.dumps({"role": int(cycle.role), "keep_conn": cycle.keep_conn, "params": pairs})
    cycle.end(b"Content-Type: application/json\r\n\r\n" + body.encode())


@route("/sleep")
async def sleep(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    await asyncio.sleep(float(query.get("s", ["1"])[0]))
    cycle.end(TEXT + b"\r\nslept")


@route("/wait-abort")
async def wait_abort(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    await cycle.write(TEXT + b"\r\nwaiting\n")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        EVENTS.append(f"aborted {cycle.request_id}")
        raise


@route("/fail")
async def fail(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    raise RuntimeError("handler failed on purpose")


@route("/filter")
async def filter_(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    body = await cycle.body.read_all()
    assert cycle.data is not None
    data = await cycle.data.read_all()
    cycle.end(TEXT + b"\r\n" + f"stdin={len(body)} data={data.upper().decode()}".encode())


@route("/stderr")
async def stderr(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    await cycle.write_stderr(b"a log line\n")
    cycle.end(TEXT + b"\r\nok")


def reset_gates() -> None:
    """Forget every gate and barrier count (a new loop may reuse an old loop's id)."""
    _GATES.clear()
    _ARRIVALS.clear()


def _gate(key: str) -> asyncio.Event:
    slot = (id(asyncio.get_running_loop()), key)
    gate = _GATES.get(slot)
    if gate is None:
        gate = _GATES[slot] = asyncio.Event()
    return gate


@route("/hold")
async def hold(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    """Wait, without reading the body, until /release?key= is requested; then answer."""
    key = query.get("key", [""])[0]
    EVENTS.append(f"holding {key}")
    await _gate(key).wait()
    cycle.end(TEXT + b"\r\nreleased " + key.encode())


@route("/release")
async def release(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    _gate(query.get("key", [""])[0]).set()
    cycle.end(TEXT + b"\r\nok")


@route("/barrier")
async def barrier(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    """Answer only once ``n`` requests with the same key are in flight together."""
    key, count = query.get("key", [""])[0], int(query.get("n", ["1"])[0])
    slot = (id(asyncio.get_running_loop()), key)
    _ARRIVALS[slot] = _ARRIVALS.get(slot, 0) + 1
    if _ARRIVALS[slot] >= count:
        _gate("barrier:" + key).set()
    await _gate("barrier:" + key).wait()
    cycle.end(TEXT + b"\r\n" + str(cycle.request_id).encode())


@route("/stats")
async def stats(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    """The server's view of its other connections: buffers and flow-control state."""
    server = cycle.protocol.server
    connections = [
        {
            "write_buffer": conn.transport.get_write_buffer_size() if conn.transport else 0,
            "writing_paused": conn._writing_paused,
            "input_buffered": conn._input_buffered,
            "reading_paused": conn._reading_paused,
            "requests": len(conn.cycles),
        }
        for conn in server.connections
        if conn is not cycle.protocol
    ]
    body = {
        "connections": connections,
        "accepted": server.stats.accepted_connections,
        "started": server.stats.requests_started,
        "finished": server.stats.requests_finished,
    }
    cycle.end(b"Content-Type: application/json\r\n\r\n" + json.dumps(body).encode())
