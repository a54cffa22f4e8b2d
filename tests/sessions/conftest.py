"""Fixtures for the session suite: stores of each kind (behind a spy), the test apps served by a
ServerThread, a cookie-keeping client, and a private redis-server."""

from __future__ import annotations

import inspect
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from smisk.core.application import Application
from smisk.runtime.handler import ApplicationHandler
from smisk.sessions import FileSessionStore, MemorySessionStore
from smisk.sessions.redis import RedisSessionStore
from tests.sessions.apps import AsyncApp, SyncApp
from tests.support.fcgi_client import FastCGIClient
from tests.support.redis import RedisServer
from tests.support.serving import ServerThread

STORE_KINDS = ["memory", "file", "redis"]
MODES = ["sync", "async"]
STORE_METHODS = ("read", "write", "refresh", "destroy")


# -- a spy in front of any store (duck-typed: it is not a SessionStore) ------------------------


class _SpyBase:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:  # settings, lock/unlock, aclose: the inner store's
        return getattr(self.inner, name)

    def ids_seen(self) -> set[Any]:
        return {call[1] for call in self.calls}

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]


class SyncSpy(_SpyBase):
    def read(self, session_id: Any) -> Any:
        self.calls.append(("read", session_id))
        return self.inner.read(session_id)

    def write(self, session_id: Any, data: Any) -> None:
        self.calls.append(("write", session_id, data))
        self.inner.write(session_id, data)

    def refresh(self, session_id: Any) -> None:
        self.calls.append(("refresh", session_id))
        self.inner.refresh(session_id)

    def destroy(self, session_id: Any) -> None:
        self.calls.append(("destroy", session_id))
        self.inner.destroy(session_id)


class AsyncSpy(_SpyBase):
    async def read(self, session_id: Any) -> Any:
        self.calls.append(("read", session_id))
        return await self.inner.read(session_id)

    async def write(self, session_id: Any, data: Any) -> None:
        self.calls.append(("write", session_id, data))
        await self.inner.write(session_id, data)

    async def refresh(self, session_id: Any) -> None:
        self.calls.append(("refresh", session_id))
        await self.inner.refresh(session_id)

    async def destroy(self, session_id: Any) -> None:
        self.calls.append(("destroy", session_id))
        await self.inner.destroy(session_id)


def spy(inner: Any) -> Any:
    return AsyncSpy(inner) if inspect.iscoroutinefunction(inner.read) else SyncSpy(inner)


# -- a client that keeps the session cookie -----------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def set_cookie(self) -> str | None:
        return self.headers.get("set-cookie")


@dataclass
class Browser:
    address: str
    cookie: str | None = None  # "SID=<id>" as the client would send it
    extra: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, cookie: str | None = None, **params: str) -> Reply:
        uri, _, query = path.partition("?")
        env = {"REQUEST_URI": path, "SCRIPT_NAME": uri, "QUERY_STRING": query} | self.extra
        sent = cookie if cookie is not None else self.cookie
        if sent:
            env["HTTP_COOKIE"] = sent.encode("utf-8").decode("latin-1")  # the header's bytes
        with FastCGIClient(self.address) as client:
            reply = parse_reply(client.request(params=env | params))
        self._remember(reply.set_cookie)
        return reply

    def _remember(self, set_cookie: str | None) -> None:
        if set_cookie is None:
            return
        pair = set_cookie.split(";")[0]
        self.cookie = pair if pair.partition("=")[2] else None

    @property
    def session_id(self) -> str | None:
        return self.cookie.partition("=")[2] if self.cookie else None


def parse_reply(response: Any) -> Reply:
    headers, body = response.split()
    status = int(headers.get("status", "200").split()[0])
    return Reply(status, headers, body.decode("utf-8", "replace"))


# -- stores and servers --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def sockdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="smisk-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


StoreFactory = Callable[..., Any]


@pytest.fixture
def make_store(tmp_path: Path, request: pytest.FixtureRequest) -> StoreFactory:
    """``make_store(kind, **options)``: a fresh store; redis ones get a key prefix of their own."""

    def make(kind: str, **options: Any) -> Any:
        if kind == "memory":
            return MemorySessionStore(**options)
        if kind == "file":
            return FileSessionStore(str(tmp_path / "sessions" / "smisk-sess."), **options)
        server = request.getfixturevalue("redis_server")
        prefix = f"test:{uuid.uuid4().hex}:"
        return RedisSessionStore(server.url, key_prefix=prefix, **options)

    return make


@dataclass
class Served:
    server: ServerThread
    app: Application
    store: Any

    @property
    def address(self) -> str:
        return str(self.server.addresses[0])

    def browser(self, **extra: str) -> Browser:
        return Browser(self.address, extra=extra)


@contextmanager
def serving(
    app: Application, store: Any, sockdir: Path, name: str = "fcgi.sock"
) -> Iterator[Served]:
    """Serve ``app`` with ``store`` on a unix socket; the store's loop client is closed after."""
    app.sessions = store
    handler = ApplicationHandler(app)
    with ServerThread(handler, [str(sockdir / name)]) as server:
        try:
            yield Served(server, app, store)
        finally:
            if hasattr(store, "aclose"):
                server.call(store.aclose())
    handler.close()


def new_app(mode: str) -> Application:
    return SyncApp() if mode == "sync" else AsyncApp()


@pytest.fixture
def served(store_kind: str, mode: str, make_store: StoreFactory, sockdir: Path) -> Iterator[Served]:
    """The test app (sync or async) on a spied store of each kind."""
    with serving(new_app(mode), spy(make_store(store_kind)), sockdir) as running:
        yield running
