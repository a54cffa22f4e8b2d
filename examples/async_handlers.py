"""Async handlers: ``async def service()`` runs on the event loop, so it can await other
coroutines (a database driver, an HTTP client, ``asyncio.gather``) without a thread.

Run: ``smisk-serve examples.async_handlers:App --bind 127.0.0.1:5000``

* ``/`` answers after two concurrent "lookups" (``asyncio.gather``: 0.1 s, not 0.2 s);
* ``/stream`` streams lines with ``await response.awrite()`` (waits while the client is slow);
* ``POST /echo`` reads the body with ``await request.input.aread()`` (never a blocking read).
"""

from __future__ import annotations

import asyncio

from smisk.core import Application


async def lookup(key: str) -> str:
    """Stands in for any awaitable I/O: a query, an HTTP call, a cache read."""
    await asyncio.sleep(0.1)
    return key.upper()


class App(Application):
    async def service(self) -> None:
        path = self.request.url.path
        self.response.headers.append("Content-Type: text/plain; charset=utf-8")
        if path.endswith("/stream"):
            self.response.headers.append("X-Accel-Buffering: no")  # nginx: pass chunks on
            for number in range(5):
                await self.response.awrite(f"line {number}\n")
                await self.response.drain()
            return
        if path.endswith("/echo"):
            body = await self.request.input.aread()
            await self.response.awrite(body)
            return
        first, second = await asyncio.gather(lookup("a"), lookup("b"))
        await self.response.awrite(f"{first}{second}\n")
