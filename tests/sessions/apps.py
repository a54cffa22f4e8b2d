"""Applications for the session tests: one set of actions, served by a sync and an async service.

``RedisCounterApp`` is also served by ``smisk-serve`` in child processes, configured through
environment variables.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import time
from typing import Any

from smisk.core.application import Application
from smisk.core.http_request import Request
from smisk.core.http_response import Response
from smisk.sessions import (
    InvalidSessionIdError,
    SessionCookieError,
    SessionNotLoadedError,
    new_id,
)

SLOW = 0.01  # seconds between read and write in /slow-incr: makes unlocked updates overlap


def increment(request: Request) -> int:
    session = request.session or {"n": 0}
    session["n"] += 1
    request.session = session
    return int(session["n"])


def act(request: Request, response: Response) -> str:
    """Do what the path asks; return the body."""
    path = request.url.path or "/"
    if path == "/none":
        return "untouched"
    if path == "/get":
        return json.dumps(request.session)
    if path == "/incr":
        return f"{increment(request)} {os.getpid()}"
    if path == "/init":
        request.session = {"items": []}
        return "ok"
    if path == "/append":  # in-place mutation, no assignment
        request.session["items"].append(len(request.session["items"]))
        return "ok"
    if path == "/destroy":
        request.session = None
        return "destroyed"
    if path == "/id":
        return request.session_id
    if path == "/setid":
        return set_id(request, request.get.get("id", ""))
    if path == "/login":  # regenerate the id, keep the data
        request.session_id = new_id()
        return request.session_id
    if path == "/late":
        return late(request, response)
    if path == "/datetime":
        request.session = {"when": datetime.datetime.now()}
        return "stored?"
    raise LookupError(path)


def set_id(request: Request, value: str) -> str:
    try:
        request.session_id = value
    except InvalidSessionIdError:
        return "refused"
    request.session = {"set": True}
    return "adopted"


def late(request: Request, response: Response) -> str:
    response.write("begun;")
    try:
        request.session = {"late": True}
    except SessionCookieError as error:
        return str(error)
    return "no error"


class SyncApp(Application):
    """The actions from a plain service() (handler threads)."""

    def service(self) -> None:
        request, response = self.request, self.response
        if request.url.path == "/slow-incr":
            session = request.session or {"n": 0}
            time.sleep(SLOW)
            request.session = {"n": session["n"] + 1}
            return
        response.write(act(request, response))


class AsyncApp(Application):
    """The actions from an async service(): ``await request.load_session()`` first."""

    async def service(self) -> None:
        request, response = self.request, self.response
        if request.url.path == "/unloaded":
            response.write(unloaded(request))
            return
        if request.url.path != "/none":  # the one action that leaves the session alone
            await request.load_session()
        if request.url.path == "/slow-incr":
            session = request.session or {"n": 0}
            await asyncio.sleep(SLOW)
            request.session = {"n": session["n"] + 1}
            return
        response.write(act(request, response))


def unloaded(request: Request) -> str:
    try:
        return repr(request.session)
    except SessionNotLoadedError as error:
        return str(error)


def _redis_store() -> Any:
    from smisk.sessions.redis import RedisSessionStore

    return RedisSessionStore(
        os.environ["SMISK_TEST_REDIS_URL"], key_prefix=os.environ["SMISK_TEST_KEY_PREFIX"]
    )


class RedisCounterApp(SyncApp):
    """SyncApp on the RedisSessionStore named by SMISK_TEST_REDIS_URL (for smisk-serve)."""

    sessions_class = staticmethod(_redis_store)


def _file_store() -> Any:
    from smisk.sessions.file import FileSessionStore

    return FileSessionStore(os.environ["SMISK_TEST_SESSION_PREFIX"], locking=True)


class FileCounterApp(SyncApp):
    """SyncApp on a locking FileSessionStore at SMISK_TEST_SESSION_PREFIX (for smisk-serve)."""

    sessions_class = staticmethod(_file_store)
