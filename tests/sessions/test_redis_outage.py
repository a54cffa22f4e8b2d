"""Redis going away: requests that touch the session get a 503 and a log line, the others are
served, and everything works again once Redis is back (no restart of the server)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from smisk.sessions.redis import RedisSessionStore
from tests.sessions.conftest import Served, new_app, serving
from tests.support.redis import RedisServer


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def served_on_own_redis(own_redis: RedisServer, mode: str, sockdir: Path) -> Iterator[Served]:
    with serving(new_app(mode), RedisSessionStore(own_redis.url), sockdir) as running:
        yield running


def outage_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        record.name == "smisk.sessions" and "session store unavailable" in record.getMessage()
        for record in caplog.records
    )


def assert_unavailable(reply_status: int, headers: dict[str, str], body: str) -> None:
    assert reply_status == 503
    assert headers.get("retry-after") == "5"
    assert "503 Service Unavailable" in body
    assert "set-cookie" not in headers


def test_outage_and_recovery(
    served_on_own_redis: Served, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="smisk.sessions")
    browser = served_on_own_redis.browser()
    assert browser.get("/incr").body.startswith("1 ")
    own_redis.stop()

    assert browser.get("/none").status == 200  # no session: not affected
    reply = browser.get("/incr")  # an existing session: its read fails
    assert_unavailable(reply.status, reply.headers, reply.body)
    newcomer = served_on_own_redis.browser()
    reply = newcomer.get("/incr")  # a new session: its write-back fails
    assert_unavailable(reply.status, reply.headers, reply.body)
    assert newcomer.cookie is None
    assert outage_logged(caplog)

    own_redis.start()  # empty again: --save "" keeps nothing
    assert browser.get("/incr").body.startswith("1 ")  # the old id is unknown: a fresh session
    assert browser.get("/incr").body.startswith("2 ")
    assert newcomer.get("/incr").body.startswith("1 ")
