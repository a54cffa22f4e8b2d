"""Test applications: one route table, served by a sync or an async ``service``.

Routes are functions of the app; the route is the last segment of the request path (nginx
locations such as ``/lighttpd/`` only change params, not the route). A route returns None or an
awaitable (async mode only). Routes that read raw input or wait use the blocking stream methods in
sync mode and the awaitable ones in async mode. Everything reaches the request through the classic
``request``/``response``/``app`` proxies, as legacy code does.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from smisk.core import Application, Request, Response, app, request, response
from smisk.core.channel import BlockingCallOnLoopError

MODES = ("sync", "async")
WAIT_LIMIT = 30.0  # seconds a route waits for the test to release it before giving up


class Signals:
    """Events shared between routes and tests (servers run in the test process)."""

    def __init__(self) -> None:
        self.sleeper_started = threading.Event()
        self.sleeper_release = threading.Event()
        self.barriers: dict[str, threading.Barrier] = {}
        self.async_barriers: dict[str, asyncio.Barrier] = {}
        self.lock = threading.Lock()
        self.upload_paths: list[str] = []
        self.push_release = threading.Event()

    def barrier(self, group: str, parties: int) -> threading.Barrier:
        with self.lock:
            if group not in self.barriers:
                self.barriers[group] = threading.Barrier(parties, timeout=WAIT_LIMIT)
            return self.barriers[group]

    def async_barrier(self, group: str, parties: int) -> asyncio.Barrier:
        """A barrier for tasks on one loop (threads of the default executor may be too few)."""
        if group not in self.async_barriers:
            self.async_barriers[group] = asyncio.Barrier(parties)
        return self.async_barriers[group]


SIGNALS = Signals()


class AppRequest(Request):
    """A custom request class: its ``__init__`` must run for every request."""

    def __init__(self) -> None:
        super().__init__()
        self.init_calls = 1

    def from_internet_explorer(self) -> bool:
        return "MSIE" in self.env.get("HTTP_USER_AGENT", "")


class AppResponse(Response):
    """A custom response class: its ``__init__`` must run for every request."""

    def __init__(self) -> None:
        super().__init__()
        self.init_calls = 1


class TestApp(Application):
    """The shared behaviour; ``mode`` says whether ``service`` is sync or async."""

    mode = "sync"
    request_class = AppRequest
    response_class = AppResponse

    @property
    def is_async(self) -> bool:
        return self.mode == "async"

    def dispatch(self) -> Any:
        path = request.env.get("SCRIPT_NAME", "") + request.env.get("PATH_INFO", "")
        name = path.rstrip("/").rsplit("/", 1)[-1] or "hello"
        route = ROUTES.get(name)
        if route is None:
            response.headers.append("Status: 404 Not Found")
            response("no route ", name)
            return None
        return route(self)

    def error(self, typ: Any, val: Any, tb: Any) -> None:
        if "errorfails" in request.get:
            raise RuntimeError("error() itself failed")
        Application.error(self, typ, val, tb)


class SyncApp(TestApp):
    mode = "sync"

    def service(self) -> None:
        self.dispatch()


class AsyncApp(TestApp):
    mode = "async"

    async def service(self) -> None:
        result = self.dispatch()
        if inspect.isawaitable(result):
            await result


def make_app(mode: str, **settings: Any) -> TestApp:
    """A new app of ``mode``; ``settings`` become instance attributes (``max_*`` go to the
    request template, which every request copies)."""
    instance: TestApp = SyncApp() if mode == "sync" else AsyncApp()
    for name, value in settings.items():
        if name.startswith("max_"):
            setattr(instance.request, name, value)
        else:
            setattr(instance, name, value)
    return instance


# -- helpers ---------------------------------------------------------------------------------


def reply(data: Any) -> None:
    response.headers.append("Content-Type: application/json")
    response(json.dumps(data, sort_keys=True, default=str))


def read_body(a: TestApp) -> Any:
    """The whole raw body: bytes (sync) or an awaitable of bytes (async)."""
    return request.input.aread() if a.is_async else request.input.read()


async def _wait_in_thread(event: threading.Event) -> bool:
    return await asyncio.get_running_loop().run_in_executor(None, event.wait, WAIT_LIMIT)


def sync_or_async(
    a: TestApp, sync: Callable[[], None], asynchronous: Callable[[], Awaitable[None]]
) -> Any:
    return asynchronous() if a.is_async else sync()


# -- routes ----------------------------------------------------------------------------------


def r_hello(a: TestApp) -> None:
    response.write("<h1>Hello World!</h1>")


def r_info(a: TestApp) -> None:
    url = request.url
    reply(
        {
            "mode": a.mode,
            "method": request.method,
            "url": str(url),
            "url_parts": [url.scheme, url.user, url.host, url.port, url.path, url.query],
            "get": request.get,
            "cookies": request.cookies,
            "env_has_proxy": "HTTP_PROXY" in request.env,
            "env": {k: v for k, v in request.env.items() if k.startswith("HTTP_X_")},
            "server_software": request.env.get("SERVER_SOFTWARE"),
            "is_active": request.is_active,
            "referring_url": None if request.referring_url is None else str(request.referring_url),
            "app_is_serving_app": app == a,
            "proxies": request == a.request and response == a.response,
            "request_class": type(a.request).__name__,
            "response_class": type(a.response).__name__,
            "init_calls": [a.request.init_calls, a.response.init_calls],  # type: ignore[attr-defined]
            "ie": a.request.from_internet_explorer(),  # type: ignore[attr-defined]
            "limits": [request.max_formdata_size, request.max_multipart_size],
            "charset": a.charset,
        }
    )


def r_isolation(a: TestApp) -> Any:
    """Read a unique value, wait until every request of the group is inside service, read again."""
    before = request.get["v"]
    group, parties = request.get["group"], int(request.get["n"])

    def finish() -> None:
        after = request.get["v"]
        same = request == a.request and response == a.response
        response.headers.append(f"X-Echo: {after}")
        response(f"{before}|{after}|{request.url.query}|{same}")

    if a.is_async:

        async def run() -> None:
            barrier = SIGNALS.async_barrier(group, parties)
            await asyncio.wait_for(barrier.wait(), WAIT_LIMIT)
            await asyncio.sleep(0)
            finish()

        return run()
    SIGNALS.barrier(group, parties).wait()
    finish()
    return None


def r_sleeper(a: TestApp) -> Any:
    """Block (sync: in the handler thread) until the test releases it."""
    SIGNALS.sleeper_started.set()

    def sync() -> None:
        time.sleep(1)  # a handler that blocks, as sync database calls do
        released = SIGNALS.sleeper_release.wait(WAIT_LIMIT)
        response(f"slept released={released}")

    async def asynchronous() -> None:
        await asyncio.sleep(1)
        released = await _wait_in_thread(SIGNALS.sleeper_release)
        response(f"slept released={released}")

    return sync_or_async(a, sync, asynchronous)


def r_quick(a: TestApp) -> None:
    response("quick ", request.get.get("i", ""))


def r_fail(a: TestApp) -> None:
    raise ValueError('<script>alert("x")</script> & more')


def r_fail_after_output(a: TestApp) -> Any:
    response.headers.append("Content-Type: text/html")
    response("<p>partial output</p>")
    if a.is_async:

        async def run() -> None:
            await response.drain()
            raise ValueError("<b>late</b> failure")

        return run()
    response.out.flush()
    raise ValueError("<b>late</b> failure")


def r_fail_status(a: TestApp) -> None:
    response.headers.append("X-Dropped: yes")
    raise LookupError("boom")


def r_bad_header_value(a: TestApp) -> None:
    response.headers.append("X-Bad: a\r\nX-Injected: 1")
    response("never" + "-sent")


def r_bad_header_name(a: TestApp) -> None:
    response.headers.append("X-Bad\nX-Injected: 1")
    response("never" + "-sent")


def r_bad_header_nul(a: TestApp) -> None:
    response.headers.append("X-Bad: a\0b")
    response("never" + "-sent")


def r_header_line(a: TestApp) -> None:
    """Add the header line given in ``line`` (as bytes with ``bytes=1``), then write a body."""
    line = request.get.get("line", "")
    response.headers.append(line.encode() if "bytes" in request.get else line)
    response("never" + "-sent")


def r_status(a: TestApp) -> None:
    response.headers.append("Status: 404 Not Found")
    response.headers.append("Content-Type: text/plain")
    response("missing")


def r_notype(a: TestApp) -> None:
    response.write(b"no type")


def r_empty(a: TestApp) -> None:
    """No output at all: the response still gets its headers."""


def r_headers(a: TestApp) -> None:
    response.headers = ["Content-Type: text/plain", "X-A: 1", 5]
    found = [
        response.find_header("content-type"),
        response.find_header("X-A:"),
        response.find_header("x"),
        response.find_header(""),
        response.find_header("X-Nope"),
    ]
    before = response.has_begun
    response.begin()
    after = response.has_begun
    try:
        response.begin()
        again = "no error"
    except OSError as error:
        again = str(error)
    response(json.dumps({"found": found, "has_begun": [before, after], "again": again}))


def r_write_variants(a: TestApp) -> None:
    response()  # nothing: does not begin
    began_after_empty = response.has_begun
    response.write("")
    response("Hello", " ", "World", " ", "\u00e5", " ", 5, b" bytes")
    response.writelines(["|", "lines", b"|"])
    response.write("|write")
    response.out.write(b"|out")
    response.out.writelines(["|", 7])
    response.out.write_byte(ord("!"))
    response.out.write(b"|cut-here-not", 8)
    response(f"|{began_after_empty}")


def r_large(a: TestApp) -> Any:
    size = int(request.get.get("size", str(8 << 20)))
    block = bytes(range(256)) * 256  # 64 KiB
    response.headers.append("Content-Type: application/octet-stream")
    response.headers.append(f"Content-Length: {size}")

    def sync() -> None:
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            response.write(piece)
            sent += len(piece)

    async def asynchronous() -> None:
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            await response.awrite(piece)
            sent += len(piece)

    return sync_or_async(a, sync, asynchronous)


def r_cookie(a: TestApp) -> None:
    q = request.get
    response.set_cookie(
        q.get("name", "n"),
        q.get("value", "v"),
        comment=q.get("comment"),
        domain=q.get("domain"),
        path=q.get("path"),
        secure="secure" in q,
        version=int(q.get("version", "1")),
        max_age=int(q.get("max_age", "-1")),
        http_only="http_only" in q,
        same_site=q.get("same_site"),
    )
    response("cookies: ", json.dumps(request.cookies, sort_keys=True))


def r_cookie_late(a: TestApp) -> None:
    response("begun")
    try:
        response.set_cookie("late", "1")
    except OSError as error:
        response("|", str(error))


def r_sendfile(a: TestApp) -> None:
    if "length" in request.get:  # the application announces the length itself
        response.headers.append(f"Content-Length: {request.get['length']}")
    try:
        response.send_file(request.get["path"])
    except Exception as error:
        response.headers.append("Status: 500 Internal Server Error")
        response(type(error).__name__, ": ", str(error))


def r_sendfile_late(a: TestApp) -> None:
    response("begun")
    try:
        response.send_file("/x")
    except OSError as error:
        response("|", str(error))


def _describe_files(files: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in files.items():
        items = value if isinstance(value, list) else [value]
        described = []
        for item in items:
            st = os.stat(item["path"])
            with open(item["path"], "rb") as handle:  # small files only (sync test reading)
                digest = hashlib.sha256(handle.read()).hexdigest()
            SIGNALS.upload_paths.append(item["path"])
            described.append(
                {
                    "filename": item["filename"],
                    "content_type": item["content_type"],
                    "size": item["size"],
                    "path": item["path"],
                    "exists": True,
                    "mode": oct(stat.S_IMODE(st.st_mode)),
                    "prefix": os.path.basename(item["path"]).startswith("smisk-upload-"),
                    "sha256": digest,
                    "keys": sorted(item),
                }
            )
        out[name] = described if isinstance(value, list) else described[0]
    return out


def r_form(a: TestApp) -> Any:
    """post and files (files described off the loop in async mode)."""

    def describe() -> dict[str, Any]:
        return {"post": request.post, "files": _describe_files(request.files)}

    if a.is_async:

        async def run() -> None:
            loop = asyncio.get_running_loop()
            files = await loop.run_in_executor(None, _describe_files, request.files)
            reply({"post": request.post, "files": files})

        return run()
    reply(describe())
    return None


def r_form_fail(a: TestApp) -> Any:
    """Look at the uploads (they exist, 0600), then fail: the temp files must still go."""

    def check_then_fail(files: dict[str, Any]) -> None:
        described = _describe_files(files)
        assert all(item["exists"] for item in described.values())
        raise RuntimeError("handler failed after reading uploads")

    if a.is_async:

        async def run() -> None:
            await asyncio.get_running_loop().run_in_executor(None, check_then_fail, request.files)

        return run()
    check_then_fail(request.files)
    return None


def r_upload_digest(a: TestApp) -> Any:
    """For big uploads: size and sha256 of each file, hashed off the loop in chunks."""

    def digest(path: str) -> str:
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
        return sha.hexdigest()

    def collect() -> dict[str, Any]:
        out = {}
        for name, item in request.files.items():
            out[name] = {"size": item["size"], "sha256": digest(item["path"])}
        return out

    if a.is_async:

        async def run() -> None:
            files = request.files
            loop = asyncio.get_running_loop()
            out = {}
            for name, item in files.items():
                out[name] = {
                    "size": item["size"],
                    "sha256": await loop.run_in_executor(None, digest, item["path"]),
                }
            reply({"files": out, "post": request.post})

        return run()
    reply({"files": collect(), "post": request.post})
    return None


def r_raw(a: TestApp) -> Any:
    """The raw body, plus what post/files say (after the raw read)."""

    def answer(body: bytes) -> None:
        reply(
            {
                "body": body.decode("latin-1"),
                "post": request.post,
                "files": sorted(request.files),
            }
        )

    if a.is_async:

        async def run() -> None:
            answer(await request.input.aread())

        return run()
    answer(request.input.read())
    return None


def r_post_then_raw(a: TestApp) -> Any:
    """post first, then the raw body: an urlencoded body stays readable after parsing."""
    post = request.post

    def answer(body: bytes) -> None:
        reply({"post": post, "body": body.decode("latin-1")})

    if a.is_async:

        async def run() -> None:
            answer(await request.input.aread())

        return run()
    answer(request.input.read())
    return None


def r_json(a: TestApp) -> Any:
    from smisk.core.serialization.json import json_decode

    if a.is_async:

        async def run() -> None:
            reply({"decoded": json_decode(await request.input.aread())})

        return run()
    reply({"decoded": json_decode(request.input.read())})
    return None


def r_lines(a: TestApp) -> Any:
    """readline, read(n), iteration and readlines over the body."""

    def sync() -> None:
        stream = request.input
        first = stream.readline()
        limited = stream.readline(3)
        some = stream.read(4)
        rest_lines = list(stream) if request.get.get("how") == "iter" else stream.readlines()
        eof = [stream.read(), stream.readline(), stream.read(5)]
        reply(
            {
                "first": first.decode(),
                "limited": limited.decode(),
                "some": some.decode(),
                "rest": [line.decode() for line in rest_lines],
                "eof": [e.decode() for e in eof],
            }
        )

    async def asynchronous() -> None:
        stream = request.input
        first = await stream.areadline()
        limited = await stream.areadline(3)
        some = await stream.aread(4)
        rest_lines = [line async for line in stream]
        eof = [await stream.aread(), await stream.areadline(), await stream.aread(5)]
        reply(
            {
                "first": first.decode(),
                "limited": limited.decode(),
                "some": some.decode(),
                "rest": [line.decode() for line in rest_lines],
                "eof": [e.decode() for e in eof],
            }
        )

    return sync_or_async(a, sync, asynchronous)


def r_iter_request(a: TestApp) -> Any:
    """``iter(request)`` is line iteration over the body (sync only; async iterates input)."""
    if a.is_async:

        async def run() -> None:
            reply({"lines": [line.decode() async for line in request.input]})

        return run()
    reply({"lines": [line.decode() for line in request]})
    return None


def r_blocking_on_loop(a: TestApp) -> None:
    """In async mode the blocking calls raise a clear error instead of deadlocking."""
    messages = {}
    for name, call in (
        ("read", lambda: request.input.read()),
        ("readline", lambda: request.input.readline()),
    ):
        try:
            call()
            messages[name] = "no error"
        except BlockingCallOnLoopError as error:
            messages[name] = f"BlockingCallOnLoopError: {error}"
    reply(messages)


def r_log(a: TestApp) -> Any:
    request.log_error(f"hello log {request.get.get('tag', '')}")
    if a.is_async:

        async def run() -> None:
            await request.errors.aflush()
            response("logged")

        return run()
    request.errors.write("second line via errors\n")
    response("logged")
    return None


def r_push(a: TestApp) -> Any:
    """Flush part of the body, then wait until the test has seen it ("server push")."""
    response.headers.append("Content-Type: text/plain")
    response("part1;")

    def sync() -> None:
        response.out.flush()
        released = SIGNALS.push_release.wait(WAIT_LIMIT)
        response(f"part2 released={released}")

    async def asynchronous() -> None:
        await response.out.aflush()
        released = await _wait_in_thread(SIGNALS.push_release)
        response(f"part2 released={released}")

    return sync_or_async(a, sync, asynchronous)


def r_stream_misc(a: TestApp) -> Any:
    """read(0), readlines(hint), close() on input, and the Stream type."""
    from smisk.core import Stream

    def result(zero: bytes, lines: list[bytes], rest: bytes) -> None:
        request.input.close()
        reply(
            {
                "zero": zero.decode(),
                "lines": [line.decode() for line in lines],
                "rest": rest.decode(),
                "types": [isinstance(request.input, Stream), isinstance(response.out, Stream)],
            }
        )

    if a.is_async:

        async def run() -> None:
            zero = await request.input.aread(0)
            lines = [await request.input.areadline(), await request.input.areadline()]
            result(zero, lines, await request.input.aread())

        return run()
    zero = request.input.read(0)
    lines = request.input.readlines(5)
    result(zero, lines, request.input.read())
    return None


def r_exit(a: TestApp) -> None:
    response("bye")
    a.exit()


def r_charset(a: TestApp) -> None:
    response.headers.append(f"Content-Type: text/plain; charset={a.charset}")
    response("\u00e5\u00e4\u00f6 ", repr(request.get.get("q")))


ROUTES: dict[str, Callable[[TestApp], Any]] = {
    name[2:]: func for name, func in globals().items() if name.startswith("r_") and callable(func)
}
