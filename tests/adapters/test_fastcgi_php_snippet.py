"""Flask and Starlette behind a real nginx whose location includes Debian's
``snippets/fastcgi-php.conf``: every route answers as under the framework's own test client.

That snippet sends ``PATH_INFO`` even when it did not split (``$path_info`` is then empty) and
the whole path as ``SCRIPT_NAME``; taking that at face value gave 404 for every route but
``/``. A second location splits at a mount point with ``fastcgi_split_path_info``: that split is
kept (``root_path`` ``/app``). The reference for path, root path and query is Flask's test client
and, for Starlette, the scope its TestClient builds (``reference_scope``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask, jsonify
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smisk.adapters.asgi import ASGIHandler
from smisk.adapters.wsgi import WSGIHandler
from tests.adapters.conftest import Front
from tests.adapters.locations import split_locations

pytestmark = pytest.mark.nginx

# (URL, mount point the front end splits off) -- the query is part of what is compared.
URLS = [
    ("/", ""),
    ("/hello/w%C3%B6rld?x=1&y=%20", ""),
    ("/items/42?a=b", ""),
    ("/missing", ""),
    ("/app/", "/app"),
    ("/app/hello/w%C3%B6rld?x=1", "/app"),
    ("/app/items/7", "/app"),
]
FILES = ["index.php", "hello/wörld", "items/42", "missing"]  # for the snippet's try_files


# -- Flask --------------------------------------------------------------------------------------


def flask_app() -> Flask:
    app = Flask("fastcgi_php")

    def answer(view: str, arg: object = None) -> Any:
        return jsonify(
            view=view,
            arg=arg,
            path=flask_request.path,
            root_path=flask_request.script_root,
            query=flask_request.query_string.decode("latin-1"),
        )

    app.add_url_rule("/", "root", lambda: answer("root"))
    app.add_url_rule("/hello/<name>", "hello", lambda name: answer("hello", name))
    app.add_url_rule("/items/<int:item>", "item", lambda item: answer("item", item))
    return app


def flask_reference(app: Flask, url: str, mount: str) -> tuple[int, dict[str, Any]]:
    path = url[len(mount) :]
    response = app.test_client().get(path, base_url=f"http://localhost{mount}")
    return response.status_code, json.loads(response.data) if response.status_code == 200 else {}


# -- Starlette ----------------------------------------------------------------------------------


def starlette_app() -> Starlette:
    async def answer(request: Request) -> JSONResponse:
        params = dict(request.path_params)
        return JSONResponse(
            {
                "view": request.scope["endpoint"].__name__,
                "arg": next(iter(params.values()), None),
                "path": request.url.path,
                "root_path": request.scope["root_path"],
                "query": request.url.query,
            }
        )

    async def root(request: Request) -> JSONResponse:
        return await answer(request)

    async def hello(request: Request) -> JSONResponse:
        return await answer(request)

    async def item(request: Request) -> JSONResponse:
        return await answer(request)

    routes = [Route("/", root), Route("/hello/{name}", hello), Route("/items/{item:int}", item)]
    return Starlette(routes=routes)


def reference_scope(url: str, mount: str) -> dict[str, Any]:
    """The scope Starlette's TestClient builds for ``url`` with ``root_path=mount``."""
    parts = urlsplit(url)
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "path": unquote(parts.path),
        "raw_path": parts.path.encode(),
        "root_path": mount,
        "scheme": "http",
        "query_string": parts.query.encode(),
        "headers": [(b"host", b"testserver")],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }


def starlette_reference(app: Starlette, url: str, mount: str) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(reference_scope(url, mount), receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body) if sent[0]["status"] == 200 else {}


# -- the comparison -----------------------------------------------------------------------------


def via_nginx(front: Front, handler: Any, tmp_path: Path) -> list[tuple[int, dict[str, Any]]]:
    nginx, _ = front(handler, split_locations(tmp_path, "/", FILES))
    results = []
    for url, _mount in URLS:
        status, _, body = nginx.get(url)
        results.append((status, json.loads(body) if status == 200 else {}))
    return results


def test_flask_routes_as_under_its_test_client(front: Front, tmp_path: Path) -> None:
    app = flask_app()
    expected = [flask_reference(app, url, mount) for url, mount in URLS]
    assert [status for status, _ in expected] == [200, 200, 200, 404, 200, 200, 200]
    assert via_nginx(front, WSGIHandler(app), tmp_path) == expected


def test_starlette_routes_as_under_its_test_client(front: Front, tmp_path: Path) -> None:
    app = starlette_app()
    expected = [starlette_reference(app, url, mount) for url, mount in URLS]
    assert [status for status, _ in expected] == [200, 200, 200, 404, 200, 200, 200]
    assert via_nginx(front, ASGIHandler(app, lifespan="off"), tmp_path) == expected
