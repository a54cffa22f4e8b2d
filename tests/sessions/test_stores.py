"""The stores on their own: the interface, expiry, file safety, serializers, duck-typed stores."""

from __future__ import annotations

import asyncio
import inspect
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from smisk.core.errors import InvalidSessionError
from smisk.sessions import (
    FileSessionStore,
    InvalidSessionIdError,
    JSONSerializer,
    PickleSerializer,
    SessionStore,
    new_id,
)
from tests.sessions.apps import SyncApp
from tests.sessions.conftest import StoreFactory, serving


def call(store: Any, name: str, *args: Any) -> Any:
    """Call a store method, running it on a private loop when it is a coroutine."""
    method = getattr(store, name)
    if not inspect.iscoroutinefunction(method):
        return method(*args)

    async def run() -> Any:
        try:
            return await method(*args)
        finally:
            await store.aclose()

    return asyncio.run(run())


def test_interface(store_kind: str, make_store: StoreFactory) -> None:
    store, sid = make_store(store_kind), new_id()
    with pytest.raises(InvalidSessionError):
        call(store, "read", sid)
    call(store, "write", sid, {"a": [1, "ü"]})
    assert call(store, "read", sid) == {"a": [1, "ü"]}
    call(store, "refresh", sid)
    call(store, "destroy", sid)
    call(store, "destroy", sid)  # idempotent
    call(store, "refresh", sid)  # missing: no error
    with pytest.raises(InvalidSessionError):
        call(store, "read", sid)


@pytest.mark.parametrize("bad", ["../x", "", "a" * 10240, "A" * 32])
@pytest.mark.parametrize("method", ["read", "write", "refresh", "destroy"])
def test_stores_refuse_malformed_ids(
    store_kind: str, make_store: StoreFactory, bad: str, method: str
) -> None:
    store = make_store(store_kind)
    args = (bad, {}) if method == "write" else (bad,)
    with pytest.raises(InvalidSessionIdError):
        call(store, method, *args)


def expire_now(store: Any, store_kind: str, sid: str) -> None:
    """Make ``sid`` older than its TTL."""
    if store_kind == "file":
        os.utime(store.path(sid), (0, 0))
    elif store_kind == "memory":
        store._entries[sid] = (store._entries[sid][0], 0.0)
    else:

        async def run() -> None:
            try:
                await store.client().pexpireat(store.key(sid), 1)  # a time long past
            finally:
                await store.aclose()

        asyncio.run(run())


def test_expired_sessions_are_gone(store_kind: str, make_store: StoreFactory) -> None:
    store, sid = make_store(store_kind), new_id()
    call(store, "write", sid, 1)
    assert call(store, "read", sid) == 1
    expire_now(store, store_kind, sid)
    with pytest.raises(InvalidSessionError):
        call(store, "read", sid)


def test_redis_ttl(make_store: StoreFactory) -> None:
    store, sid = make_store("redis", ttl=77), new_id()

    async def run() -> tuple[int, int]:
        try:
            await store.write(sid, 1)
            first = await store.client().ttl(store.key(sid))
            await store.client().expire(store.key(sid), 5)
            await store.refresh(sid)
            return first, await store.client().ttl(store.key(sid))
        finally:
            await store.aclose()

    assert asyncio.run(run()) == (77, 77)


def test_file_store_files_are_private(tmp_path: Path) -> None:
    store, sid = FileSessionStore(str(tmp_path / "new" / "s.")), new_id()
    store.write(sid, {"x": 1})
    assert store.path(sid) == str(tmp_path / "new" / "s.") + sid
    assert stat.S_IMODE(os.stat(store.path(sid)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700
    assert os.listdir(tmp_path / "new") == [f"s.{sid}"]  # no temp file left behind


def test_file_store_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError):
        FileSessionStore(str(shared / "s.")).write(new_id(), 1)


def test_file_store_default_prefix_is_private() -> None:
    store = FileSessionStore()
    assert store.file_prefix.endswith(f"smisk-sessions-{os.geteuid()}/smisk-sess.")


def test_file_store_write_replaces_atomically(tmp_path: Path) -> None:
    store, sid = FileSessionStore(str(tmp_path / "s.")), new_id()
    store.write(sid, "old")
    inode = os.stat(store.path(sid)).st_ino
    with open(store.path(sid), "rb") as reader:  # a reader holding the old file
        store.write(sid, "new")
        assert reader.read() == b'"old"'
    assert os.stat(store.path(sid)).st_ino != inode
    assert store.read(sid) == "new"


def test_corrupt_file_is_invalid(tmp_path: Path) -> None:
    store, sid = FileSessionStore(str(tmp_path / "s.")), new_id()
    store.write(sid, 1)
    Path(store.path(sid)).write_bytes(b'{"torn')
    with pytest.raises(InvalidSessionError):
        store.read(sid)


def test_json_serializer_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(TypeError, match="not JSON-serializable"):
        JSONSerializer().dumps({"x": object()})
    assert JSONSerializer().loads(JSONSerializer().dumps((1, "a"))) == [1, "a"]


def test_pickle_serializer_is_signed() -> None:
    signer = PickleSerializer(b"k" * 32)
    blob = signer.dumps({1, 2})
    assert signer.loads(blob) == {1, 2}
    with pytest.raises(InvalidSessionError):
        PickleSerializer(b"o" * 32).loads(blob)  # another secret
    with pytest.raises(InvalidSessionError):
        signer.loads(blob[:-1] + b"!")  # tampered
    with pytest.raises(ValueError):
        PickleSerializer(b"short")


def test_file_store_with_pickle(tmp_path: Path) -> None:
    store = FileSessionStore(str(tmp_path / "s."), serializer=PickleSerializer(b"s" * 16))
    sid = new_id()
    store.write(sid, {"t": (1, 2)})
    assert store.read(sid) == {"t": (1, 2)}


def test_base_store_methods_are_abstract() -> None:
    store = SessionStore()
    assert (store.ttl, store.name) == (900, "SID")
    for method, args in [("read", ()), ("write", (1,)), ("refresh", ()), ("destroy", ())]:
        with pytest.raises(NotImplementedError, match=method):
            getattr(store, method)(new_id(), *args)


class DictStore:
    """A duck-typed store: only the four methods, no settings, no serializer."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def read(self, session_id: str) -> Any:
        if session_id not in self.data:
            raise InvalidSessionError("no data")
        return self.data[session_id]

    def write(self, session_id: str, data: Any) -> None:
        self.data[session_id] = data

    def refresh(self, session_id: str) -> None:
        pass

    def destroy(self, session_id: str) -> None:
        self.data.pop(session_id, None)


def test_any_object_with_the_interface_is_a_store(sockdir: Path) -> None:
    store = DictStore()
    with serving(SyncApp(), store, sockdir) as running:
        browser = running.browser()
        for expected in (1, 2, 3):
            assert browser.get("/incr").body.startswith(f"{expected} ")
    assert list(store.data.values()) == [{"n": 3}]
    assert browser.cookie is not None and browser.cookie.startswith("SID=")
