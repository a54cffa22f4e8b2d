"""A plain WSGI application (PEP 3333) served by smisk's FastCGI server.

Run: ``python examples/wsgi_app.py 127.0.0.1:5000`` (or ``unix:/path``). Any WSGI framework
(Flask, Django, Bottle) plugs in the same way: pass its application object to ``main``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from typing import Any

import smisk


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Echo the method, path and query; POST bodies are read from ``wsgi.input``."""
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size) if size else b""
    text = (
        f"WSGI {environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
        f"?{environ.get('QUERY_STRING', '')} body={len(body)}\n"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


async def main(app: Any, address: str) -> None:
    """Serve ``app`` on ``address`` until SIGTERM or SIGINT, then stop gracefully."""
    async with smisk.serve(app, bind=address, interface="wsgi", handle_signals=True) as server:
        print("READY", server.addresses[0], flush=True)
        await server.wait_stopped()


if __name__ == "__main__":
    asyncio.run(main(application, sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5000"))
