"""Per-request CPU cost of smisk's Python hot path, without sockets or a web server.

Feeds nginx-shaped FastCGI requests (keep-alive, id 1) to one ``FastCGIProtocol`` over an in-memory
transport and reports microseconds per request for async and sync ``service`` methods: a hello
world, and an echo of a 1 MiB POST body arriving as nginx sends it (32 KiB STDIN records) in
256 KiB reads (what uvloop hands ``data_received``). ``wsgi`` is the benchmark's WSGI hello
(``benchmarks/peers/wsgi_app.py``) on ``WSGIHandler``: the sync hello's thread hand-off plus the
WSGI adapter. ``handoff`` is the wake-up round trip alone that a sync handler adds: the loop hands
a no-op to a handler thread and waits for its result.
Set ``SMISK_NO_EXTENSIONS=1`` to measure the pure-Python codec. ``--cpu`` times the hello, echo
and WSGI cases in process CPU time instead of wall time: on a shared machine other processes then
cost less (handler threads' CPU counts too; ``handoff`` stays wall time, as it is mostly waiting).
``--profile`` prints a cProfile of one case, its handler threads included.
Run: ``python benchmarks/hotpath.py [--requests N] [--only CASE ...]
[--profile async|sync|async-echo|sync-echo|wsgi]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from peers.wsgi_app import app as wsgi_hello  # benchmarks/ is on sys.path: run as a script

from smisk.adapters.wsgi import WSGIHandler
from smisk.codec import IMPLEMENTATION, encode_params
from smisk.core import Application
from smisk.protocol.records import encode_record
from smisk.runtime import allocator
from smisk.runtime.handler import ApplicationHandler
from smisk.server import Server
from smisk.server.protocol import FastCGIProtocol
from smisk.server.threads import HandlerThreads

NGINX_PARAMS = {
    "QUERY_STRING": "",
    "REQUEST_METHOD": "GET",
    "CONTENT_TYPE": "",
    "CONTENT_LENGTH": "",
    "SCRIPT_NAME": "/a",
    "REQUEST_URI": "/a",
    "DOCUMENT_URI": "/a",
    "DOCUMENT_ROOT": "/usr/share/nginx/html",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REQUEST_SCHEME": "http",
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SERVER_SOFTWARE": "nginx/1.22.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "40000",
    "REMOTE_USER": "",
    "SERVER_ADDR": "127.0.0.1",
    "SERVER_PORT": "8181",
    "SERVER_NAME": "",
    "REDIRECT_STATUS": "200",
    "HTTP_HOST": "127.0.0.1",
    "HTTP_USER_AGENT": "wrk",
}


ECHO_SIZE = 1024 * 1024
NGINX_STDIN_RECORD = 32 * 1024  # nginx frames a request body as records of this size
READ_SIZE = 256 * 1024  # uvloop's read buffer: the largest chunk data_received gets


def request_bytes(body: bytes = b"") -> bytes:
    params = dict(NGINX_PARAMS)
    if body:
        params.update(REQUEST_METHOD="POST", CONTENT_LENGTH=str(len(body)))
        params["CONTENT_TYPE"] = "application/octet-stream"
    pairs = [(k.encode(), v.encode()) for k, v in params.items()]
    begin = encode_record(1, 1, b"\x00\x01\x01\x00\x00\x00\x00\x00")
    head = begin + encode_record(4, 1, encode_params(pairs)) + encode_record(4, 1)
    records = [body[i : i + NGINX_STDIN_RECORD] for i in range(0, len(body), NGINX_STDIN_RECORD)]
    return head + b"".join(encode_record(5, 1, r) for r in records) + encode_record(5, 1)


def reads(data: bytes) -> list[bytes]:
    """``data`` cut as the event loop would hand it over."""
    return [data[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]


class MemoryTransport(asyncio.Transport):
    """Collects writes; wakes the driver when an END_REQUEST record was written."""

    def __init__(self) -> None:
        super().__init__()
        self.done: asyncio.Future[None] | None = None

    def write(self, data: Any) -> None:
        if b"\x01\x03\x00\x01" in bytes(data[-16:]) and self.done is not None:
            self.done.set_result(None)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class AsyncHello(Application):
    async def service(self) -> None:
        self.response.headers = ["Content-Type: text/plain"]
        self.response("Hello, World!")


class SyncHello(Application):
    def service(self) -> None:
        self.response.headers = ["Content-Type: text/plain"]
        self.response("Hello, World!")


class AsyncEcho(Application):
    async def service(self) -> None:
        body = await self.request.input.aread()
        self.response.headers = ["Content-Type: application/octet-stream"]
        await self.response.awrite(body)


class SyncEcho(Application):
    def service(self) -> None:
        body = self.request.input.read()
        self.response.headers = ["Content-Type: application/octet-stream"]
        self.response.write(body)


# A fresh handler per round: each one owns (and closes) its handler threads.
HandlerFactory = Callable[[], ApplicationHandler | WSGIHandler]


ECHO_BODY = bytes(range(256)) * (ECHO_SIZE // 256)
CASES: dict[str, tuple[HandlerFactory, bytes]] = {
    "async": (lambda: ApplicationHandler(AsyncHello()), b""),
    "sync": (lambda: ApplicationHandler(SyncHello()), b""),
    "async-echo": (lambda: ApplicationHandler(AsyncEcho()), ECHO_BODY),
    "sync-echo": (lambda: ApplicationHandler(SyncEcho()), ECHO_BODY),
    # as ``--interface wsgi`` serves it (the same hello the peers' WSGI servers run)
    "wsgi": (lambda: WSGIHandler(wsgi_hello), b""),
}


async def drive(
    make_handler: HandlerFactory,
    count: int,
    body: bytes = b"",
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    handler = make_handler()
    server = Server(handler)
    protocol = FastCGIProtocol(server)
    transport = MemoryTransport()
    protocol.connection_made(transport)
    chunks = reads(request_bytes(body))
    loop = asyncio.get_running_loop()
    start = clock()
    for _ in range(count):
        transport.done = loop.create_future()
        for chunk in chunks:
            protocol.data_received(chunk)
        await transport.done
    elapsed = clock() - start
    handler.close()
    return elapsed / count * 1e6


async def handoff(count: int) -> float:
    """Microseconds per round trip loop -> handler thread -> loop, for a call that does nothing."""
    threads = HandlerThreads(1)
    await threads.call(int)  # the thread is started outside the measurement
    start = time.perf_counter()
    for _ in range(count):
        await threads.call(int)
    elapsed = time.perf_counter() - start
    threads.shutdown()
    return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--profile", choices=tuple(CASES))
    parser.add_argument("--only", nargs="+", choices=tuple(CASES), help="run these cases alone")
    parser.add_argument("--cpu", action="store_true", help="process CPU time, not wall time")
    options = parser.parse_args()
    clock = time.process_time if options.cpu else time.perf_counter
    allocator.tune()  # as smisk-serve does at start-up
    if options.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if options.profile:
        make_handler, body = CASES[options.profile]
        profile(drive(make_handler, _count(options, body), body))
        return
    print(f"codec: {IMPLEMENTATION}")
    print(f"{'service':12} {'us/request (median of ' + str(options.rounds) + ')':>28}")
    for name in options.only or CASES:
        make_handler, body = CASES[name]
        count = _count(options, body)
        runs = [asyncio.run(drive(make_handler, count, body, clock)) for _ in range(options.rounds)]
        print(f"{name:12} {statistics.median(runs):28.2f}")
    if options.only:
        return
    runs = [asyncio.run(handoff(options.requests // 4)) for _ in range(options.rounds)]
    print(f"{'handoff':12} {statistics.median(runs):28.2f}")


def profile(run: Coroutine[Any, Any, float]) -> None:
    """Print the 25 costliest functions of ``run``, handler threads included.

    A ``cProfile.Profile`` sees only the thread that enabled it, so each thread started during
    the run enables its own (through ``threading.setprofile``) and the stats are added up.
    """
    profilers = [cProfile.Profile()]

    def start_thread_profiler(*_: Any) -> None:
        sys.setprofile(None)  # called once, by the new thread's first event
        profilers.append(thread_profiler := cProfile.Profile())
        thread_profiler.enable()

    threading.setprofile(start_thread_profiler)
    try:
        profilers[0].runcall(asyncio.run, run)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    stats = pstats.Stats(profilers[0])
    for thread_profiler in profilers[1:]:
        stats.add(thread_profiler)
    stats.sort_stats("tottime").print_stats(25)


def _count(options: argparse.Namespace, body: bytes) -> int:
    """Requests per round: a 1 MiB echo costs about a hundred hellos."""
    return max(options.requests // 100, 50) if body else options.requests


if __name__ == "__main__":
    main()
