"""Child-process entry point for the hostile-peer tests: the test handlers plus ``/probe``,
which reports the server's own bookkeeping (tasks, connections, requests in flight) as JSON.
Limits come from the ``SMISK_*`` environment (``ServerLimits.from_environ``). Usage:
``python -m tests.hardening.serve_probe ADDRESS [MAX_CONNECTIONS]``."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from smisk.server import RequestCycle, Server, bind_listener
from tests.support.handlers import route, router


@route("/probe")
async def probe(cycle: RequestCycle, query: dict[str, list[str]]) -> None:
    server = cycle.protocol.server
    body = {
        "tasks": len(asyncio.all_tasks()),
        "request_tasks": len(server.tasks),
        "connections": len(server.connections),
        "stats": {name: getattr(server.stats, name) for name in server.stats.__slots__},
    }
    cycle.end(b"Content-Type: application/json\r\n\r\n" + json.dumps(body).encode())


async def main(address: str, max_connections: int) -> None:
    server = Server(router, max_connections=max_connections)
    await server.start([bind_listener(address)])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", server.addresses[0], flush=True)
    await stop.wait()
    await server.close(5)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4096))
