"""The current application, request and response.

Rules: ``request`` and ``response`` live in ContextVars, so concurrent requests in one process
(tasks on the loop, handlers in threads) never see each other's objects. ``app`` is the
Application serving the current request, else ``Application.current`` (normally the same one:
one Application per process; embedding several is possible and each request sees its own).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from smisk.core.objectproxy import ObjectProxy

__all__ = ["app", "current_app", "current_request", "current_response", "request", "response"]

current_app: ContextVar[Any] = ContextVar("smisk.app", default=None)
current_request: ContextVar[Any] = ContextVar("smisk.request", default=None)
current_response: ContextVar[Any] = ContextVar("smisk.response", default=None)


def _current_app() -> Any:
    serving = current_app.get()
    if serving is not None:
        return serving
    from smisk.core.application import Application

    return Application.current


def _request_or_template() -> Any:
    obj = current_request.get()
    if obj is None:
        application = _current_app()
        return None if application is None else application.request
    return obj


def _response_or_template() -> Any:
    obj = current_response.get()
    if obj is None:
        application = _current_app()
        return None if application is None else application.response
    return obj


app = ObjectProxy(_current_app)
request = ObjectProxy(_request_or_template)
response = ObjectProxy(_response_or_template)
