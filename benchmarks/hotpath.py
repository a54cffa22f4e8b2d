"""Per-request CPU cost of smisk's Python hot path, without sockets or a web server.

Feeds nginx-shaped FastCGI requests (keep-alive, id 1) to one ``FastCGIProtocol`` over an in-memory
transport and reports microseconds per request for an async and a sync hello-world ``service``.
Run: ``python benchmarks/hotpath.py [--requests N] [--profile]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from typing import Any

from smisk.codec import encode_params
from smisk.core import Application
from smisk.protocol.records import encode_record
from smisk.server import Server
from smisk.server.protocol import FastCGIProtocol
from smisk.serving import ApplicationHandler

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


def request_bytes() -> bytes:
    pairs = [(k.encode(), v.encode()) for k, v in NGINX_PARAMS.items()]
    begin = encode_record(1, 1, b"\x00\x01\x01\x00\x00\x00\x00\x00")
    params = encode_record(4, 1, encode_params(pairs)) + encode_record(4, 1)
    return begin + params + encode_record(5, 1)


class MemoryTransport(asyncio.Transport):
    """Collects writes; wakes the driver when an END_REQUEST record was written."""

    def __init__(self) -> None:
        super().__init__()
        self.done: asyncio.Future[None] | None = None

    def write(self, data: Any) -> None:
        if b"\x01\x03\x00\x01" in bytes(data)[-16:] and self.done is not None:
            self.done.set_result(None)

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


async def drive(app: Application, count: int) -> float:
    handler = ApplicationHandler(app)
    server = Server(handler)
    protocol = FastCGIProtocol(server)
    transport = MemoryTransport()
    protocol.connection_made(transport)
    data = request_bytes()
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for _ in range(count):
        transport.done = loop.create_future()
        protocol.data_received(data)
        await transport.done
    elapsed = time.perf_counter() - start
    handler.close()
    return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--profile", choices=("async", "sync"))
    options = parser.parse_args()
    if options.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if options.profile:
        app = AsyncHello() if options.profile == "async" else SyncHello()
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, drive(app, options.requests))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    print(f"{'service':8} {'us/request (median of ' + str(options.rounds) + ')':>28}")
    for name, cls in (("async", AsyncHello), ("sync", SyncHello)):
        runs = [asyncio.run(drive(cls(), options.requests)) for _ in range(options.rounds)]
        print(f"{name:8} {statistics.median(runs):28.2f}")


if __name__ == "__main__":
    main()
