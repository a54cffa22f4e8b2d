"""The three applications the routing matrix puts behind every front end.

Rules: the same routes in each interface (classic ``service()``, Flask, Starlette); every answer,
a 404 included, is JSON ``{view, path, root_path, query}`` as the framework itself sees the
request, so a wrong split shows up as a different view or path, never as an opaque error page.
``params`` in the answer is for reading a failure only; the matrix does not compare it.

The ``/app/...`` routes exist so that an application mounted at ``/app`` whose front end lost
the mount point answers with an ``app_*`` view (visible) instead of a generic 404.
An encoded slash (``/a%2Fb``) reaches the ``/a/b`` view: WSGI's PATH_INFO and ASGI's ``path`` are
decoded, so neither Flask nor Starlette can tell ``%2F`` from ``/`` when routing (the raw form
stays in REQUEST_URI / ``raw_path``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from typing import Any

from flask import Flask
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from smisk.core import Application

# Path inside the application -> view name.
VIEWS = {"/": "root", "/a/b": "a_b", "/café": "cafe", "/x": "x", "/t/": "t"}
# The same views once more under /app, for an app that should have been mounted there.
ROUTES = {**VIEWS, **{"/app" + path: "app_" + view for path, view in VIEWS.items()}}
NOT_FOUND = "not-found"

Report = dict[str, Any]


def report(view: str, path: str, root_path: str, query: str) -> Report:
    """The answer every view gives (the matrix compares exactly these keys)."""
    return {"view": view, "path": path, "root_path": root_path, "query": query}


# -- classic smisk -----------------------------------------------------------------------------


def classic_report(path: str, query: str) -> Report:
    """What the classic app answers for ``request.url.path`` and ``request.url.query``.

    The classic API has no mount point: ``request.url.path`` is the whole path under every
    front end, so the app routes on it and its root path is always empty.
    """
    return report(ROUTES.get(path, NOT_FOUND), path, "", query)


class Classic(Application):
    """The routes as a classic ``service()``: the view is picked from ``request.url.path``."""

    def service(self) -> None:
        url = self.request.url
        answer = classic_report(url.path or "", url.query or "")
        env = self.request.env
        answer["params"] = {k: env.get(k) for k in ("SCRIPT_NAME", "PATH_INFO", "REQUEST_URI")}
        if answer["view"] == NOT_FOUND:
            self.response.headers.append("Status: 404 Not Found")
        self.response.headers.append("Content-Type: application/json")
        self.response(json.dumps(answer))


# -- Flask (WSGI) ------------------------------------------------------------------------------


def _flask_report(view: str) -> Report:
    answer = report(
        view,
        flask_request.path,
        flask_request.script_root,
        flask_request.query_string.decode("latin-1"),
    )
    environ = flask_request.environ
    answer["params"] = {k: environ.get(k) for k in ("SCRIPT_NAME", "PATH_INFO", "REQUEST_URI")}
    return answer


def _flask_view(view: str) -> Callable[[], Report]:
    def answer() -> Report:
        return _flask_report(view)

    return answer


def make_flask() -> Flask:
    """The routes as a Flask application."""
    app = Flask(__name__)
    for path, view in ROUTES.items():
        app.add_url_rule(path, view, _flask_view(view))
    app.register_error_handler(404, lambda _error: (_flask_report(NOT_FOUND), 404))
    return app


flask_app = make_flask()


# -- Starlette (ASGI) --------------------------------------------------------------------------


def starlette_report(scope: MutableMapping[str, Any], view: str) -> Report:
    """What the Starlette app answers for ``scope`` routed to ``view``."""
    return report(
        view, scope["path"], scope.get("root_path", ""), scope["query_string"].decode("latin-1")
    )


def _starlette_answer(request: StarletteRequest, view: str, status: int = 200) -> JSONResponse:
    answer = starlette_report(request.scope, view)
    answer["params"] = {"raw_path": request.scope.get("raw_path", b"").decode("latin-1")}
    return JSONResponse(answer, status_code=status)


def _starlette_view(view: str) -> Callable[[StarletteRequest], Any]:
    async def answer(request: StarletteRequest) -> JSONResponse:
        return _starlette_answer(request, view)

    return answer


async def _starlette_not_found(request: StarletteRequest, _exc: Exception) -> JSONResponse:
    return _starlette_answer(request, NOT_FOUND, 404)


def make_starlette() -> Starlette:
    """The routes as a Starlette application."""
    routes = [Route(path, _starlette_view(view), name=view) for path, view in ROUTES.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _starlette_not_found})


starlette_app = make_starlette()
