# Rules: the session logic is written once, as generators that yield store operations
# ("read", id) and receive their results; two small drivers run them: one in handler threads
# (coroutine methods go to the loop through the channel, plain ones are called in the thread) and
# one on the loop (plain blocking methods go to a worker thread). No store call happens anywhere
# else, and no id reaches a store before it has passed ``is_valid_id``.
"""SessionBinding: the per-request session state machine behind ``request.session``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import pickle
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from smisk.core.context import current_response
from smisk.core.cookies import format_set_cookie
from smisk.core.errors import InvalidSessionError, ServiceUnavailable
from smisk.sessions.base import CookiePolicy
from smisk.sessions.ids import check_id, is_valid_id, new_id

if TYPE_CHECKING:
    from smisk.core.http_request import Request

__all__ = ["SessionBinding", "SessionCookieError", "SessionNotLoadedError"]

log = logging.getLogger("smisk.sessions")

Operation = tuple[Any, ...]  # (store method name, *arguments)
Steps = Generator[Operation, Any, None]


class SessionNotLoadedError(RuntimeError):
    """An async ``service()`` used the session before ``await request.load_session()``."""


class SessionCookieError(OSError):
    """A new session id is needed after output has begun (its Set-Cookie can no longer be sent)."""


class SessionBinding:
    """One request's session: lazy load, id issue, cookie, write-back and lock."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._loaded = False
        self._id: str | None = None  # the id the data belongs to (None: no id issued yet)
        self._stored = False  # _id has an entry in the store (it was read from it)
        self._fingerprint: bytes | None = None  # the serialized data as read
        self._data: Any = None
        self._send_id = False  # _id is new to the client: Set-Cookie when output begins
        self._clear_cookie = False  # the client's session was destroyed: expire its cookie
        self._doomed: list[str] = []  # ids to destroy when the request ends
        self._lock: tuple[str, str] | None = None  # (id, token) of the session lock held
        self._failed = False  # write-back failed: send no cookie for data that was not saved

    # -- the request's API -------------------------------------------------------------------

    def get(self) -> Any:
        """The session data (None for a new session)."""
        self._ensure_loaded()
        return self._data

    def set(self, value: Any) -> None:
        """Replace the data; None destroys the session (and later data gets a fresh id)."""
        self._ensure_loaded()
        if value is None:
            self._drop()
        elif self._id is None:
            self._issue()
        self._data = value

    def get_id(self) -> str:
        """The session id; a new one is issued (and sent as a cookie) when there is none."""
        self._ensure_loaded()
        if self._id is None:
            self._issue()
        assert self._id is not None
        return self._id

    def set_id(self, value: str) -> None:
        """Move the session to the id ``value`` (e.g. a fresh ``new_id()`` after a login)."""
        check_id(value)
        self._check_output("set the session id")
        self._ensure_loaded()
        if value == self._id:
            return
        if self._stored and self._id is not None:
            self._doomed.append(self._id)
        self._id, self._stored, self._fingerprint, self._send_id = value, False, None, True

    async def aload(self) -> Any:
        """Load the session on the loop (async services); returns the data."""
        if not self._loaded:
            await self._run_async(self._load_steps())
        return self._data

    def response_headers(self) -> list[str]:
        """The Set-Cookie line for a new id or a destroyed session, else nothing."""
        if self._failed:
            return []
        if self._send_id and self._id is not None:
            return [self._cookie_line(self._id, None)]
        if self._clear_cookie:
            return [self._cookie_line("", 0)]
        return []

    def finish_sync(self) -> None:
        """Write back (or refresh) and unlock, in the handler thread."""
        if self._loaded or self._lock is not None:
            try:
                self._run_sync(self._finish_steps())
            except Exception:
                self._failed_write_back(sys.exc_info())

    async def afinish(self) -> None:
        """Write back (or refresh) and unlock, on the loop."""
        if self._loaded or self._lock is not None:
            try:
                await self._run_async(self._finish_steps())
            except Exception:
                self._failed_write_back(sys.exc_info())

    # -- state -------------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        channel = self._request._channel
        if channel is not None and not channel.threaded:
            raise SessionNotLoadedError(
                "in an async service(), call `await request.load_session()` before using "
                "request.session or request.session_id (loading may need store I/O)"
            )
        self._run_sync(self._load_steps())

    def _adopt(self, session_id: str, data: Any) -> None:
        self._id, self._stored, self._data = session_id, True, data
        self._fingerprint = self._dumps(data)

    def _issue(self) -> None:
        self._check_output("send a new session id")
        self._id, self._stored, self._fingerprint, self._send_id = new_id(), False, None, True

    def _drop(self) -> None:
        if self._stored and self._id is not None:
            self._doomed.append(self._id)
        self._clear_cookie = self._clear_cookie or self._cookie_id() is not None
        self._id, self._stored, self._fingerprint, self._send_id = None, False, None, False

    def _check_output(self, what: str) -> None:
        response = current_response.get()
        if response is not None and response.has_begun:
            raise SessionCookieError(
                f"output has already begun: too late to {what} (its Set-Cookie header must "
                f"precede the body); use request.session before writing the response"
            )

    # -- the steps (store operations as data) --------------------------------------------------

    def _load_steps(self) -> Steps:
        candidate = self._cookie_id()
        if candidate is not None:
            yield from self._lock_steps(candidate)
            try:
                data = yield ("read", candidate)
            except InvalidSessionError:  # unknown or expired: never adopted, a new id follows
                yield from self._unlock_steps()
            except Exception:
                yield from self._unlock_steps()
                raise
            else:
                self._adopt(candidate, data)
        self._loaded = True

    def _finish_steps(self) -> Steps:
        # No yield in a `finally`: a cancelled driver must be able to close this generator.
        try:
            for doomed in self._doomed:
                yield ("destroy", doomed)
            self._doomed = []
            operation = self._write_back()
            if operation is not None:
                yield operation
        except Exception:
            yield from self._unlock_steps()
            raise
        yield from self._unlock_steps()

    def _write_back(self) -> Operation | None:
        """write when the id is new or the serialized data changed; else refresh."""
        if self._id is None or not self._loaded:
            return None
        if self._send_id or self._dumps(self._data) != self._fingerprint:
            return ("write", self._id, self._data)
        return ("refresh", self._id)

    def _lock_steps(self, session_id: str) -> Steps:
        if getattr(self._store(), "locking", False):
            token = yield ("lock", session_id)
            self._lock = (session_id, token)

    def _unlock_steps(self) -> Steps:
        if self._lock is not None:
            held, self._lock = self._lock, None
            yield ("unlock", *held)

    # -- drivers -------------------------------------------------------------------------------

    def _run_sync(self, steps: Steps) -> None:
        result: Any = None
        error: BaseException | None = None
        while True:
            try:
                operation = steps.throw(error) if error is not None else steps.send(result)
            except StopIteration:
                return
            try:
                result, error = self._call(*operation), None
            except Exception as exc:
                result, error = None, exc

    async def _run_async(self, steps: Steps) -> None:
        result: Any = None
        error: BaseException | None = None
        while True:
            try:
                operation = steps.throw(error) if error is not None else steps.send(result)
            except StopIteration:
                return
            try:
                result, error = await self._acall(*operation), None
            except Exception as exc:
                result, error = None, exc

    def _call(self, name: str, *args: Any) -> Any:
        """A store method from a handler thread: coroutine methods run on the loop."""
        method = getattr(self._store(), name)
        with _store_errors(name):
            if inspect.iscoroutinefunction(method):
                channel = self._request._channel
                if channel is None:
                    raise OSError("no active request: cannot run the session store's coroutines")
                return channel.block(method, *args)
            return method(*args)

    async def _acall(self, name: str, *args: Any) -> Any:
        """A store method on the loop: plain methods of a blocking store run in a thread."""
        store = self._store()
        method = getattr(store, name)
        with _store_errors(name):
            if inspect.iscoroutinefunction(method):
                return await method(*args)
            if not getattr(store, "blocking", True):
                return method(*args)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, functools.partial(method, *args))

    # -- settings and helpers ------------------------------------------------------------------

    def _store(self) -> Any:
        app = self._request._app
        if app is None:
            raise OSError("no active request: sessions need an Application")
        return app.sessions

    def _name(self) -> str:
        name = getattr(self._store(), "name", "SID")
        if not isinstance(name, str):
            raise TypeError("sessions.name is not a string")
        return name

    def _cookie_id(self) -> str | None:
        """The first well-formed id among the client's session cookies, else None."""
        value = self._request.cookies.get(self._name())
        candidates = value if isinstance(value, list) else [value]
        return next((c for c in candidates if is_valid_id(c)), None)

    def _dumps(self, data: Any) -> bytes:
        serializer = getattr(self._store(), "serializer", None)
        if serializer is None:  # a store without one: pickle only to compare, never loaded
            return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        blob: bytes = serializer.dumps(data)
        return blob

    def _cookie_policy(self) -> CookiePolicy:
        app = self._request._app
        policy = getattr(app, "session_cookie", None) or getattr(self._store(), "cookie", None)
        return policy if isinstance(policy, CookiePolicy) else CookiePolicy()

    def _cookie_line(self, value: str, max_age: int | None) -> str:
        policy = self._cookie_policy()
        secure = policy.secure
        if secure is None:
            secure = self._request.url.scheme == "https"
        if max_age is None:
            max_age = policy.max_age if policy.max_age is not None else -1
        line = format_set_cookie(
            self._name(),
            value,
            domain=policy.domain,
            path=policy.path,
            secure=secure,
            version=None,
            max_age=max_age,
            http_only=policy.http_only,
            same_site=policy.same_site,
        )
        return f"Set-Cookie: {line}"

    def _failed_write_back(self, exc_info: Any) -> None:
        """Answer with the application's error page (503 for an unreachable store) when nothing
        has been sent yet; otherwise the error can only be logged."""
        self._failed = True
        request, response = self._request, current_response.get()
        cycle, app = request._cycle, request._app
        if response is None or cycle is None or app is None or cycle.output_started:
            log.error("session write-back failed after output was sent", exc_info=exc_info)
            return
        response.has_begun = False  # the buffered answer was never sent: replace it
        app.error(*exc_info)
        if not response.has_begun:
            response.begin()


@contextmanager
def _store_errors(action: str) -> Iterator[None]:
    """Builtin ConnectionError/TimeoutError from a store become a logged 503."""
    try:
        yield
    except (ConnectionError, TimeoutError) as error:
        log.warning("session store unavailable (%s): %s", action, error)
        raise ServiceUnavailable(f"session store unavailable: {error}") from error
