# Rules: every method is a coroutine on the event loop (redis-py's asyncio client, one client per
# loop); an unreachable Redis becomes ServiceUnavailable (HTTP 503) plus one log line.
"""RedisSessionStore: sessions shared by several processes and machines (``smisk[redis]``)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from smisk.core.errors import InvalidSessionError, ServiceUnavailable
from smisk.sessions.base import SessionBusy, SessionStore
from smisk.sessions.ids import check_id

__all__ = ["RedisSessionStore"]

log = logging.getLogger("smisk.sessions")

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_KEY_PREFIX = "smisk:sess:"
SOCKET_TIMEOUT = 5.0  # seconds: a hung Redis becomes a 503, not a request that never ends
# One quick retry: the first command after a Redis restart meets a dead pooled connection and
# must reconnect; more retries would only delay the 503 during a real outage.
RETRY = Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1)
LOCK_POLL = 0.005  # seconds between lock attempts (Redis has no lock wait; keep the delay short)

_UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


class RedisSessionStore(SessionStore):
    """Sessions in Redis under ``key_prefix + id``, expiring after ``ttl`` (SET EX / EXPIRE).

    ``url`` is any redis-py URL (``redis://host:6379/0``, ``unix:///run/redis.sock``). With
    ``locking=True`` the lock is a Redis lock (SET NX PX with a random token, released only by its
    holder), so it serializes requests across processes and machines.
    """

    blocking = False

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        socket_timeout: float = SOCKET_TIMEOUT,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.url = url
        self.key_prefix = key_prefix
        self.socket_timeout = socket_timeout
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis]
        self._clients = weakref.WeakKeyDictionary()

    def key(self, session_id: str) -> str:
        """The Redis key of ``session_id``."""
        return self.key_prefix + check_id(session_id)

    def client(self) -> Redis:
        """The client for the running loop (a redis-py client belongs to one loop)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = Redis.from_url(
                self.url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry=RETRY,
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the running loop's client and its connections."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    @asynccontextmanager
    async def _reachable(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except _UNREACHABLE as error:
            log.warning("session store unavailable (%s %s): %s", action, self.url, error)
            raise ServiceUnavailable(f"session store unavailable: {error}") from error

    # -- the store interface -----------------------------------------------------------------

    async def read(self, session_id: str) -> Any:
        """The data of ``session_id``; InvalidSessionError when unknown or expired."""
        key = self.key(session_id)
        async with self._reachable("read"):
            blob = await self.client().get(key)
        if blob is None:
            raise InvalidSessionError("no data")
        return self.serializer.loads(blob if isinstance(blob, bytes) else blob.encode())

    async def write(self, session_id: str, data: Any) -> None:
        """SET with EX ttl."""
        key, blob = self.key(session_id), self.serializer.dumps(data)
        async with self._reachable("write"):
            await self.client().set(key, blob, ex=self.ttl)

    async def refresh(self, session_id: str) -> None:
        """EXPIRE ttl (no effect on a missing key)."""
        key = self.key(session_id)
        async with self._reachable("refresh"):
            await self.client().expire(key, self.ttl)

    async def destroy(self, session_id: str) -> None:
        """DEL."""
        key = self.key(session_id)
        async with self._reachable("destroy"):
            await self.client().delete(key)

    # -- locking -----------------------------------------------------------------------------

    def _lock(self, session_id: str) -> Lock:
        return self.client().lock(
            self.key(session_id) + ":lock",
            timeout=self.lock_lease,
            sleep=LOCK_POLL,
            blocking_timeout=self.lock_wait,
            thread_local=False,
        )

    async def lock(self, session_id: str) -> str:
        """Take the Redis lock of ``session_id`` (SessionBusy after ``lock_wait`` seconds)."""
        lock = self._lock(session_id)
        async with self._reachable("lock"):
            acquired = await lock.acquire()
        if not acquired:
            raise SessionBusy("session is locked by another request; try again")
        token = lock.local.token
        return token.decode() if isinstance(token, bytes) else str(token)

    async def unlock(self, session_id: str, token: str) -> None:
        """Release the lock if ``token`` still holds it (a lease that ran out is left alone)."""
        lock = self._lock(session_id)
        lock.local.token = token.encode()
        async with self._reachable("unlock"):
            try:
                await lock.release()
            except redis_errors.LockError:
                log.warning("session lock of %s expired before it was released", session_id)
