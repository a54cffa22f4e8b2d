"""The smisk server inside another asyncio service, on the service's own loop.

Run: ``python examples/embedded.py`` — it serves a FastCGI app on 127.0.0.1 (a free port) next to a
heartbeat task of its own, prints ``READY <address>``, and stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal

import smisk.runtime.embed
from smisk.core import Application


class Hello(Application):
    """An async service: runs on the loop, next to the host program's own tasks."""

    beats = 0

    async def service(self) -> None:
        self.response.headers.append("Content-Type: text/plain")
        await self.response.awrite(f"hello from an embedded server; beats={Hello.beats}\n")


async def heartbeat() -> None:
    """The host service's own work: keeps running while requests are served."""
    while True:
        Hello.beats += 1
        await asyncio.sleep(0.05)


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)  # the host owns its signals
    beating = asyncio.create_task(heartbeat())
    async with smisk.runtime.embed.serve(Hello, bind="127.0.0.1:0") as server:
        print("READY", server.addresses[0], flush=True)
        await stop.wait()
    beating.cancel()
    await asyncio.gather(beating, return_exceptions=True)
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
