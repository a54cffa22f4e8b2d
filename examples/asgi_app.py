"""A plain ASGI 3 application (with lifespan) served by smisk's FastCGI server.

Run: ``python examples/asgi_app.py 127.0.0.1:5000`` (or ``unix:/path``). Starlette, FastAPI
and Quart apps plug in the same way: pass the application object to ``main``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import smisk

Scope = dict[str, Any]
state: dict[str, Any] = {"started": False}


async def application(scope: Scope, receive: Any, send: Any) -> None:
    """Lifespan marks the app started; HTTP requests get their path and body size back."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                state["started"] = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    text = f"ASGI {scope['method']} {scope['path']} body={size} started={state['started']}\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


async def main(app: Any, address: str) -> None:
    """Serve ``app`` on ``address`` until SIGTERM or SIGINT; lifespan startup runs first (a
    failing startup stops here), shutdown after the server closed."""
    async with smisk.serve(app, bind=address, interface="asgi", handle_signals=True) as server:
        print("READY", server.addresses[0], flush=True)
        await server.wait_stopped()


if __name__ == "__main__":
    asyncio.run(main(application, sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5000"))
