"""Locking mode: concurrent requests of one session are serialized (no lost updates)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.sessions.conftest import Browser, StoreFactory, new_app, serving

CONCURRENT = 50


def increment_concurrently(browser: Browser) -> int:
    """Create the session, run 50 /slow-incr at once on it, return the final count."""
    browser.get("/incr")
    cookie = browser.cookie
    with ThreadPoolExecutor(CONCURRENT) as pool:
        replies = list(pool.map(lambda _: browser.get("/slow-incr", cookie=cookie), range(50)))
    assert [r.status for r in replies] == [200] * CONCURRENT
    return int(json.loads(browser.get("/get").body)["n"]) - 1


def test_locking_gives_exactly_one_increment_per_request(
    store_kind: str, mode: str, make_store: StoreFactory, sockdir: Path
) -> None:
    store = make_store(store_kind, locking=True)
    with serving(new_app(mode), store, sockdir) as running:
        assert increment_concurrently(running.browser()) == CONCURRENT


@pytest.mark.parametrize("store_kind", ["memory"])
def test_without_locking_updates_are_lost(
    store_kind: str, mode: str, make_store: StoreFactory, sockdir: Path
) -> None:
    """Control: the same load without locking loses updates, so the test above can fail."""
    with serving(new_app(mode), make_store(store_kind), sockdir) as running:
        assert increment_concurrently(running.browser()) < CONCURRENT


def test_a_lock_left_by_a_lost_request_expires(make_store: StoreFactory, sockdir: Path) -> None:
    store = make_store("memory", locking=True, lock_lease=0.2, lock_wait=5)
    with serving(new_app("sync"), store, sockdir) as running:
        browser = running.browser()
        browser.get("/incr")
        assert browser.session_id is not None
        running.server.call(store.lock(browser.session_id))  # never unlocked
        assert browser.get("/incr").body.startswith("2 ")


def test_a_busy_session_is_a_503(make_store: StoreFactory, sockdir: Path) -> None:
    store = make_store("memory", locking=True, lock_lease=30, lock_wait=0.05)
    with serving(new_app("async"), store, sockdir) as running:
        browser = running.browser()
        browser.get("/incr")
        assert browser.session_id is not None
        running.server.call(store.lock(browser.session_id))
        reply = browser.get("/incr")
        assert reply.status == 503 and reply.headers.get("retry-after") == "5"
