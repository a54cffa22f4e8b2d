"""The Host an application sees carries the port the client used, also when the front end
dropped it: Debian's nginx ``fastcgi_params`` sends ``HTTP_HOST $host`` (no port), so Flask's
and Starlette's redirects and absolute URLs pointed a client of a non-default port at port 80.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from flask import Flask, request, url_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smisk.adapters.asgi import ASGIHandler
from smisk.adapters.wsgi import WSGIHandler
from smisk.core.frontend import NO_PROXIES, TrustedProxies, request_host
from tests.interfaces.conftest import Front
from tests.support.nginx import Nginx

PROXY = TrustedProxies.parse("127.0.0.1")
MOUNT = "location /app/ { include /etc/nginx/fastcgi_params; fastcgi_pass backend; }"


def params(host: str, port: str = "8080", **more: str) -> dict[bytes, bytes]:
    env = {b"HTTP_HOST": host.encode(), b"SERVER_PORT": port.encode()}
    env.update({name.encode(): value.encode() for name, value in more.items()})
    return env


@pytest.mark.parametrize(
    ("env", "trusted", "host"),
    [
        (params("example.org"), NO_PROXIES, b"example.org:8080"),
        (params("example.org", "80"), NO_PROXIES, b"example.org"),
        (params("example.org", "443", HTTPS="on"), NO_PROXIES, b"example.org"),
        (params("example.org", "8443", HTTPS="on"), NO_PROXIES, b"example.org:8443"),
        (params("example.org", "443"), NO_PROXIES, b"example.org:443"),  # plain http on 443
        (params("example.org:9000"), NO_PROXIES, b"example.org:9000"),  # the client's port
        (params("[::1]"), NO_PROXIES, b"[::1]:8080"),
        (params("[::1]:9000"), NO_PROXIES, b"[::1]:9000"),
        (params(""), NO_PROXIES, b""),
        (params("example.org", ""), NO_PROXIES, b"example.org"),
        # A trusted proxy changed the scheme: the client's port is not the front end's.
        (
            params("example.org", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="https"),
            PROXY,
            b"example.org",
        ),
        # An untrusted header changes nothing.
        (
            params("example.org", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="https"),
            NO_PROXIES,
            b"example.org:8080",
        ),
    ],
)
def test_request_host(env: dict[bytes, bytes], trusted: TrustedProxies, host: bytes) -> None:
    assert request_host(env, trusted) == host


def flask_app() -> Flask:
    app = Flask("smisk_test_host_port")

    @app.route("/items/")
    def items() -> Any:
        return {"url": request.url, "external": url_for("items", q="a b", _external=True)}

    return app


async def starlette_items(request: Request) -> JSONResponse:
    return JSONResponse({"url": str(request.url), "external": str(request.url_for("items"))})


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/items/", starlette_items, name="items")])


def fetch(nginx: Nginx, path: str) -> tuple[int, str, bytes]:
    """One GET, redirects not followed: status, Location, body."""
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Location", ""), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("framework", ["flask", "starlette"])
@pytest.mark.parametrize("mount", ["", "/app"])
def test_redirect_and_absolute_urls_keep_the_port(framework: str, mount: str, front: Front) -> None:
    handler: Any
    if framework == "flask":
        handler = WSGIHandler(flask_app(), script_name=mount)
    else:
        handler = ASGIHandler(starlette_app(), root_path=mount, lifespan="off")
    nginx, _ = front(handler, MOUNT)
    base = f"http://127.0.0.1:{nginx.port}{mount}"
    status, location, _ = fetch(nginx, f"{mount}/items?x=%20+")
    assert status in (307, 308)
    assert location == f"{base}/items/?x=%20+"
    status, _, body = fetch(nginx, f"{mount}/items/")
    assert status == 200
    urls = json.loads(body)
    assert urls["url"] == f"{base}/items/"
    assert urls["external"].startswith(f"{base}/items/")
