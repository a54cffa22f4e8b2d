"""Handlers for the server's internal interface, routed by path; used by the conformance tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from smisk.server import RequestCycle

TEXT = b"Content-Type: text/plain\r\n"

Route = Callable[[RequestCycle, dict[str, list[str]]], Awaitable[None]]
ROUTES: dict[str, Route] = {}
EVENTS: list[str] = []  # what handlers observed (aborts), for tests running in-process


def route(path: str) -> Callable[[Route], Route]:
    def register(func: Route) -> Route:
        ROUTES[path] = func
        return func

    return register


async def router(cycle: RequestCycle) -> None:
    params = cycle.params_dict()
    path, _, query = params.get("REQUEST_URI", "/").partition("?")
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
    block = bytes(range(256)) * 256
    return (block * (size // len(block) + 1))[:size]


@route("/big")
async def big(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    size = int(query.get("n", ["100000"])[0])
    chunk = int(query.get("chunk", [str(size or 1)])[0])
    await cycle.write(
        b"Content-Type: application/octet-stream\r\n" + f"Content-Length: {size}\r\n\r\n".encode()
    )
    data = pattern(size)
    for start in range(0, size, chunk):
        await cycle.write(data[start : start + chunk])


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
