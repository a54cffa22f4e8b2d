"""The ASGI peer app on fcgisgi and uvloop: ``python asgi_app.py SOCKET``.

Rules: the same answers as the C responder and the smisk apps: a path ending in ``/large``
answers 64 KiB, ``/echo`` sends the request body back, anything else answers "Hello, World!".
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

HELLO = b"Hello, World!"
LARGE = b"x" * 65536  # the "64 KiB response" scenario

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _read_body(receive: Receive) -> bytes:
    """The whole body (nginx reads no response before it has sent the whole request)."""
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answer hello, large or echo depending on the path's last segment."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.endswith("/echo"):
        body, kind = await _read_body(receive), b"application/octet-stream"
    else:
        body, kind = (LARGE if path.endswith("/large") else HELLO), b"text/plain"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    import fcgisgi
    import uvloop

    uvloop.run(fcgisgi.run_asgi_server(app, bind_address=sys.argv[1]))
