"""The Host an application sees carries the port the client used, also when nginx dropped it:
Debian's nginx ``fastcgi_params`` sends ``HTTP_HOST $host`` (no port), so Flask's and
Starlette's redirects and absolute URLs pointed a client of a non-default port at port 80.
Other front ends pass the client's Host, which stays as sent.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import wsgiref.util
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request, url_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import smisk
from smisk.adapters.asgi import ASGIHandler
from smisk.adapters.wsgi import WSGIHandler
from smisk.core import Application
from smisk.core.frontend import NO_PROXIES, TrustedProxies, request_host
from tests.adapters.conftest import Front
from tests.serve.support import fcgi_get
from tests.support.nginx import Nginx

PROXY = TrustedProxies.parse("127.0.0.1")
MOUNT = "location /app/ { include /etc/nginx/fastcgi_params; fastcgi_pass backend; }"


def params(host: str, port: str = "8080", **more: str) -> dict[bytes, bytes]:
    env = {b"HTTP_HOST": host.encode(), b"SERVER_PORT": port.encode()}
    env[b"SERVER_SOFTWARE"] = b"nginx/1.22.1"
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
        # Apache, lighttpd, Caddy and --http pass the client's Host: no port means the default
        # (a container mapping port 80 to the front end's 8080).
        (
            params("example.org", SERVER_SOFTWARE="Apache/2.4.57 (Debian)"),
            NO_PROXIES,
            b"example.org",
        ),
        (params("example.org", SERVER_SOFTWARE="smisk-devhttp/0.1.0"), NO_PROXIES, b"example.org"),
        (params("example.org", SERVER_SOFTWARE=""), NO_PROXIES, b"example.org"),
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


def fetch_without_host(nginx: Nginx, path: str) -> tuple[str, str]:
    """An HTTP/1.0 GET without a Host header: the status line and the Location."""
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head = reply.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    location = next((line for line in head if line.lower().startswith("location:")), "")
    return head[0], location.partition(":")[2].strip()


@pytest.mark.parametrize("framework", ["flask", "starlette"])
def test_a_request_without_host_gets_the_address_it_came_in_on(
    framework: str, front: Front
) -> None:
    """nginx sends an empty HTTP_HOST and, without server_name, an empty SERVER_NAME: Flask's
    redirect said ``http:///items/``."""
    handler: Any
    if framework == "flask":
        handler = WSGIHandler(flask_app())
    else:
        handler = ASGIHandler(starlette_app(), lifespan="off")
    nginx, _ = front(handler)
    status, location = fetch_without_host(nginx, "/items")
    assert status.split()[1] in ("307", "308")
    assert location == f"http://127.0.0.1:{nginx.port}/items/"


# -- the same URL in all three interfaces -------------------------------------------------------


def wsgi_url(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [wsgiref.util.request_uri(environ, include_query=False).encode()]  # PEP 3333's way


async def asgi_url(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The URL as Starlette builds it: the host header, else the server address."""
    if scope["type"] != "http":
        return
    host = dict(scope["headers"]).get(b"host", b"").decode()
    if not host:
        host, port = scope["server"]
        host = host if port == 80 else f"{host}:{port}"
    url = f"{scope['scheme']}://{host}{scope['path']}"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": url.encode()})


class ClassicURL(Application):
    def service(self) -> None:
        self.response(str(self.request.url))


URL_APPS: dict[str, Any] = {"wsgi": wsgi_url, "asgi": asgi_url, "smisk": ClassicURL}
PARAMS = {
    "HTTP_HOST": "example.org",
    "SERVER_PORT": "8080",
    "SERVER_SOFTWARE": "nginx/1.22.1",
    "REQUEST_SCHEME": "http",
    "REMOTE_ADDR": "10.0.0.5",
    "HTTP_X_FORWARDED_PROTO": "https",
}


@pytest.mark.parametrize("interface", ["wsgi", "asgi", "smisk"])
async def test_every_interface_builds_a_url_without_host(interface: str, sockdir: Path) -> None:
    """HTTP/1.0 without Host through nginx without server_name: the classic request.url was
    ``http://:8080/p``."""
    sock = sockdir / "s.sock"
    params = {"HTTP_HOST": "", "SERVER_NAME": "", "SERVER_ADDR": "127.0.0.1", "SERVER_PORT": "8080"}
    async with smisk.serve(URL_APPS[interface], bind=f"unix:{sock}", interface=interface):
        body = await asyncio.to_thread(fcgi_get, str(sock), "/p", **params)
    assert body == "http://127.0.0.1:8080/p"


@pytest.mark.parametrize("interface", ["wsgi", "asgi", "smisk"])
@pytest.mark.parametrize(
    ("allow", "url"),
    [
        ((), "http://example.org:8080/p"),
        # A proxy made it https: nginx's :8080 is not the port the client used.
        ("10.0.0.5", "https://example.org/p"),
    ],
)
async def test_every_interface_builds_the_same_url(
    interface: str, allow: str | tuple[str, ...], url: str, sockdir: Path
) -> None:
    sock = sockdir / "s.sock"
    app = URL_APPS[interface]
    async with smisk.serve(
        app, bind=f"unix:{sock}", interface=interface, forwarded_allow_ips=allow
    ):
        body = await asyncio.to_thread(fcgi_get, str(sock), "/p", **PARAMS)
    assert body == url
