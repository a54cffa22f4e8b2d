"""The WSGI peer app, served by flup or by fcgisgi: ``python wsgi_app.py flup|fcgisgi SOCKET``.

Rules: the same answers as the C responder and the smisk apps: a path ending in ``/large``
answers 64 KiB, ``/echo`` sends the request body back, anything else answers "Hello, World!".
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

HELLO = b"Hello, World!"
LARGE = b"x" * 65536  # the "64 KiB response" scenario
ECHO_CHUNK = 65536  # bytes read from the body per step


def _read_body(environ: dict[str, Any]) -> bytes:
    """The whole body (nginx reads no response before it has sent the whole request)."""
    body, chunks = environ["wsgi.input"], []
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    while remaining > 0 and (chunk := body.read(min(ECHO_CHUNK, remaining))):
        remaining -= len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """Answer hello, large or echo depending on the path's last segment."""
    path = environ.get("PATH_INFO") or environ.get("SCRIPT_NAME", "")
    if path.endswith("/echo"):
        body, kind = _read_body(environ), "application/octet-stream"
    else:
        body, kind = (LARGE if path.endswith("/large") else HELLO), "text/plain"
    start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]


def serve_flup(path: str) -> None:
    from flup.server.fcgi import WSGIServer

    WSGIServer(app, bindAddress=path).run()


def serve_fcgisgi(path: str) -> None:
    import fcgisgi
    import uvloop

    uvloop.run(fcgisgi.run_wsgi_server(app, bind_address=path))


if __name__ == "__main__":
    server, socket_path = sys.argv[1], sys.argv[2]
    {"flup": serve_flup, "fcgisgi": serve_fcgisgi}[server](socket_path)
