"""Concurrency: a blocking handler does not stall others; concurrent requests never see each
other's request/response objects. Synchronised with events and barriers, not with timing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.core.apps import SIGNALS
from tests.core.conftest import Web


@pytest.fixture
def sleeper_signals() -> Iterator[None]:
    SIGNALS.sleeper_started.clear()
    SIGNALS.sleeper_release.clear()
    yield
    SIGNALS.sleeper_release.set()  # never leave a handler waiting


def test_blocking_handler_does_not_delay_others(web: Web, sleeper_signals: None) -> None:
    """The sleeper blocks (sync: time.sleep(1) then an Event.wait in its thread) until released;
    20 other requests, sent while it is blocked, all complete before it is let go."""
    with ThreadPoolExecutor(21) as pool:
        sleeper = pool.submit(web.get, "/sleeper")
        assert SIGNALS.sleeper_started.wait(30), "the sleeper never started"
        quick = [pool.submit(web.get, f"/quick?i={i}") for i in range(20)]
        results = [future.result(timeout=60) for future in quick]
        assert not sleeper.done(), "the sleeper finished before the quick requests"
        assert [body for _, _, body in results] == [f"quick {i}".encode() for i in range(20)]
        SIGNALS.sleeper_release.set()
        status, _, body = sleeper.result(timeout=60)
    assert (status, body) == (200, b"slept released=True")


@pytest.mark.parametrize("count", [24])
def test_context_isolation_under_concurrency(web: Web, count: int) -> None:
    """``count`` requests are all inside service at once (a barrier); each reads its own unique
    query value through the ``request`` proxy before and after waiting."""
    group = uuid.uuid4().hex
    values = [uuid.uuid4().hex for _ in range(count)]
    start = threading.Barrier(count)

    def one(value: str) -> tuple[int, dict[str, str], bytes]:
        start.wait(30)
        return web.get(f"/isolation?v={value}&group={group}&n={count}")

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, values))
    for value, (status, headers, body) in zip(values, results, strict=True):
        assert status == 200, body
        query = f"v={value}&group={group}&n={count}"
        assert body.decode() == f"{value}|{value}|{query}|True"
        assert headers["x-echo"] == value


def test_many_requests_on_kept_alive_connections(web: Web) -> None:
    """Sequential and parallel requests over nginx's keep-alive pool stay correct."""
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: web.get(f"/quick?i={i}"), range(200)))
    assert [body for _, _, body in results] == [f"quick {i}".encode() for i in range(200)]
