"""detect_interface and make_handler."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from flask import Flask
from starlette.applications import Starlette

from smisk.adapters.asgi import ASGIHandler
from smisk.adapters.wsgi import WSGIHandler
from smisk.core import Application
from smisk.runtime.handler import ApplicationHandler
from smisk.runtime.interfaces import detect_interface, make_handler, start_handler, stop_handler


class SmiskApp(Application):
    def service(self) -> None:
        pass


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


async def asgi_function(scope: Any, receive: Any, send: Any) -> None:
    pass


class ASGIObject:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class WSGIClass:
    """PEP 3333 allows a class: each call makes an instance, which is the iterable."""

    def __init__(self, environ: Any, start_response: Any) -> None:
        pass

    def __iter__(self) -> Any:
        return iter(())


def three_args_sync(a: Any, b: Any, c: Any) -> None:
    pass


async def two_args_async(a: Any, b: Any) -> None:
    pass


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        (SmiskApp, "smisk"),
        (SmiskApp(), "smisk"),
        (Flask(__name__), "wsgi"),
        (wsgi_function, "wsgi"),
        (WSGIClass, "wsgi"),
        (functools.partial(three_args_sync, 1), "wsgi"),
        (Starlette(), "asgi"),
        (asgi_function, "asgi"),
        (ASGIObject(), "asgi"),
    ],
)
def test_detect(obj: object, kind: str) -> None:
    assert detect_interface(obj) == kind


@pytest.mark.parametrize("obj", [42, three_args_sync, two_args_async, lambda: None])
def test_detect_refuses_what_it_cannot_tell(obj: object) -> None:
    with pytest.raises(TypeError):
        detect_interface(obj)


def test_make_handler_kinds() -> None:
    handlers = [
        make_handler(Flask(__name__), threads=2),
        make_handler(Starlette(), mount="/api"),
        make_handler(SmiskApp, threads=2),
    ]
    try:
        assert isinstance(handlers[0], WSGIHandler)
        assert isinstance(handlers[1], ASGIHandler) and handlers[1].root_path == "/api"
        assert isinstance(handlers[2], ApplicationHandler)
    finally:
        for handler in handlers:
            getattr(handler, "close", lambda: None)()


def test_make_handler_explicit_interface_wins() -> None:
    handler = make_handler(asgi_function, "wsgi", threads=1)
    assert isinstance(handler, WSGIHandler)
    handler.close()
    with pytest.raises(ValueError, match="interface must be one of"):
        make_handler(asgi_function, "cgi")


async def test_start_and_stop_handler_run_the_lifespan() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    handler = make_handler(app)
    await start_handler(handler)
    await stop_handler(handler)
    assert seen == ["lifespan.startup", "lifespan.shutdown"]
