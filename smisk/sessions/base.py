# Rules: no I/O here. Stores receive only ids that passed smisk.sessions.ids.check_id; what a
# store keeps is the serializer's bytes, never live objects.
"""The session store interface, serializers, cookie policy and per-process session locks.

A store is any object with ``read(id)``, ``write(id, data)``, ``refresh(id)`` and
``destroy(id)``; each may be a plain method or ``async def``. Optional attributes (``name``,
``ttl``, ``serializer``, ``cookie``, ``blocking``, ``locking`` with ``lock``/``unlock``) are read
with defaults, so duck-typed stores work as well as subclasses of :class:`SessionStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import pickle
import secrets
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

from smisk.core.errors import InvalidSessionError, ServiceUnavailable

__all__ = [
    "CookiePolicy",
    "JSONSerializer",
    "LocalLocks",
    "PickleSerializer",
    "Serializer",
    "SessionBusy",
    "SessionStore",
]

DEFAULT_TTL = 900  # seconds a session lives without being used (classic default)
DEFAULT_NAME = "SID"  # cookie name (classic default)
DEFAULT_LOCK_LEASE = 30.0  # seconds a lock is held at most: a lost holder cannot block forever
DEFAULT_LOCK_WAIT = 30.0  # seconds a request waits for a session lock before a 503


class SessionBusy(ServiceUnavailable):
    """A session stayed locked by other requests longer than the store's ``lock_wait``."""


class Serializer(Protocol):
    """Turns session data into bytes and back; ``loads`` raises InvalidSessionError on bad data."""

    def dumps(self, data: Any) -> bytes:
        """Serialize ``data``."""
        ...

    def loads(self, blob: bytes) -> Any:
        """Deserialize ``blob`` (InvalidSessionError when it is not valid data)."""
        ...


class JSONSerializer:
    """JSON (the default): loading it can never run code, whoever wrote the store's data.

    Holds dicts, lists, str, int, float, bool and None; tuples come back as lists and dict keys
    as str.
    """

    def dumps(self, data: Any) -> bytes:
        """Compact UTF-8 JSON; a clear TypeError for values JSON cannot hold."""
        try:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"session data is not JSON-serializable ({error}); keep sessions to dicts, "
                f"lists, str, numbers, bool and None, or opt in to PickleSerializer"
            ) from error
        return text.encode("utf-8")

    def loads(self, blob: bytes) -> Any:
        """Parse JSON; anything else is invalid session data."""
        try:
            return json.loads(blob)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            raise InvalidSessionError("invalid session data") from error


class PickleSerializer:
    """pickle, signed with HMAC-SHA256: any Python object, only for data this secret signed.

    Unpickling runs code chosen by whoever wrote the bytes, so an unsigned pickle store would
    turn write access to the store (a shared directory, an open Redis) into code execution. The
    signature makes forged or foreign data an InvalidSessionError instead.
    """

    MAC_SIZE = 32  # bytes of an HMAC-SHA256 digest

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("PickleSerializer needs a secret of at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def dumps(self, data: Any) -> bytes:
        """The signature followed by the pickle."""
        payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        return self._mac(payload) + payload

    def loads(self, blob: bytes) -> Any:
        """Unpickle only when the signature matches."""
        mac, payload = blob[: self.MAC_SIZE], blob[self.MAC_SIZE :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidSessionError("invalid session data (bad signature)")
        try:
            return pickle.loads(payload)
        except Exception as error:
            raise InvalidSessionError("invalid session data") from error


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """Attributes of the session cookie. ``secure=None``: Secure when the request came over
    HTTPS. ``max_age=None``: a browser-session cookie (the server-side ``ttl`` still applies)."""

    path: str = "/"
    domain: str | None = None
    secure: bool | None = None
    http_only: bool = True
    same_site: str | None = "Lax"
    max_age: int | None = None


@dataclass(slots=True)
class _Lease:
    token: str
    expires: float
    released: asyncio.Future[None]


class LocalLocks:
    """Per-process session locks for one event loop; a lock is held for at most ``lease`` s.

    Waiters wait on the holder's release (never by polling); a lease that ran out (a request
    that never finished) can be taken over.
    """

    def __init__(self) -> None:
        self._leases: dict[str, _Lease] = {}

    async def acquire(self, key: str, lease: float, wait: float) -> str:
        """Take the lock on ``key``; SessionBusy after ``wait`` seconds. Returns a token."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            now = loop.time()
            current = self._leases.get(key)
            if current is None or current.expires <= now:
                token = secrets.token_hex(8)
                self._leases[key] = _Lease(token, now + lease, loop.create_future())
                return token
            if now >= deadline:
                raise SessionBusy("session is locked by another request; try again")
            with contextlib.suppress(TimeoutError):
                timeout = min(deadline, current.expires) - now
                await asyncio.wait_for(asyncio.shield(current.released), timeout)

    def release(self, key: str, token: str) -> None:
        """Release the lock on ``key`` if ``token`` still holds it."""
        current = self._leases.get(key)
        if current is not None and current.token == token:
            del self._leases[key]
            if not current.released.done():
                current.released.set_result(None)


class SessionStore:
    """Base session store: settings and ``read``/``write``/``refresh``/``destroy``.

    Subclasses implement those four as plain methods or as ``async def``.

    ``ttl`` (seconds, default 900) and ``name`` (cookie name, default ``"SID"``) are the classic
    settings. ``serializer`` turns data into the bytes a store keeps (JSON by default).
    ``blocking``: plain methods may block (file I/O), so async services call them in a worker
    thread. ``locking``: serialize the requests of one session (``lock``/``unlock``; here a
    per-process lock; FileSessionStore and RedisSessionStore extend it to several processes).
    """

    ttl: int = DEFAULT_TTL
    name: str = DEFAULT_NAME
    serializer: Serializer = JSONSerializer()
    cookie: CookiePolicy = CookiePolicy()
    blocking: bool = True
    locking: bool = False
    lock_lease: float = DEFAULT_LOCK_LEASE
    lock_wait: float = DEFAULT_LOCK_WAIT

    def __init__(
        self,
        *,
        ttl: int | None = None,
        name: str | None = None,
        serializer: Serializer | None = None,
        cookie: CookiePolicy | None = None,
        locking: bool | None = None,
        lock_lease: float | None = None,
        lock_wait: float | None = None,
    ) -> None:
        options = {
            "ttl": ttl,
            "name": name,
            "serializer": serializer,
            "cookie": cookie,
            "locking": locking,
            "lock_lease": lock_lease,
            "lock_wait": lock_wait,
        }
        for attribute, value in options.items():
            if value is not None:
                setattr(self, attribute, value)

    def read(self, session_id: str) -> Any:
        """The data of ``session_id``; InvalidSessionError when there is none (or it expired)."""
        raise NotImplementedError("read")

    def write(self, session_id: str, data: Any) -> Any:
        """Store ``data`` for ``session_id`` and restart its TTL."""
        raise NotImplementedError("write")

    def refresh(self, session_id: str) -> Any:
        """Restart the TTL of ``session_id`` (no error if it does not exist)."""
        raise NotImplementedError("refresh")

    def destroy(self, session_id: str) -> Any:
        """Remove ``session_id`` (no error if it does not exist)."""
        raise NotImplementedError("destroy")

    def _local_locks(self) -> LocalLocks:
        """This store's lock table for the running loop (created on first use)."""
        tables = self.__dict__.get("_lock_tables")
        if tables is None:  # created lazily: subclasses need not call our __init__
            tables = self.__dict__["_lock_tables"] = weakref.WeakKeyDictionary()
        loop = asyncio.get_running_loop()
        locks: LocalLocks | None = tables.get(loop)
        if locks is None:
            locks = tables[loop] = LocalLocks()
        return locks

    async def lock(self, session_id: str) -> str:
        """Wait for the per-process lock on ``session_id``; returns the token for ``unlock``."""
        return await self._local_locks().acquire(session_id, self.lock_lease, self.lock_wait)

    async def unlock(self, session_id: str, token: str) -> None:
        """Release the lock taken by ``lock``."""
        self._local_locks().release(session_id, token)
