"""Runs an Application on the asyncio server: the bridge from request cycles to the classic
Request/Response objects, and the classic blocking ``run()``.

Rules: the kind of ``service()`` (plain or ``async def``) is decided once, at start-up. Sync
services run in a bounded thread pool inside a copy of the request's context; the loop only
waits for them. Served directly by the server (``serve_direct``), a sync request has no task:
the loop hands it to a thread, and the thread's outcome ends it on the loop; only a request
with more to await (a file to stream, upload files to remove) goes on in a task. Every request
ends with its buffered output and END_REQUEST in one hand-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import functools
import inspect
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedReader

from smisk.core.application import Application
from smisk.core.channel import Channel
from smisk.core.context import current_app, current_request, current_response
from smisk.core.frontend import TrustedProxies
from smisk.core.http_request import LIMIT_ATTRIBUTES, Request
from smisk.core.http_response import Response
from smisk.core.listen import forget, take_listener
from smisk.runtime import allocator
from smisk.server import ClientGone, Listener, RequestCycle, Server
from smisk.server.threads import HandlerThreads

__all__ = ["ApplicationHandler", "run_application", "stop_cycle"]

log = logging.getLogger("smisk")

FILE_CHUNK = 256 * 1024  # bytes read per step when the server streams a file itself


class ApplicationHandler:
    """Serves an Application's ``service()`` for each request cycle.

    ``forwarded_allow_ips`` names the proxies whose X-Forwarded-Proto ``request.url`` believes
    (see ``smisk.core.frontend.TrustedProxies``).
    """

    def __init__(
        self,
        app: Application,
        threads: int | None = None,
        *,
        forwarded_allow_ips: str | Sequence[str] | TrustedProxies = (),
    ) -> None:
        self.app = app
        self.proxies = TrustedProxies.parse(forwarded_allow_ips)
        self.is_async = inspect.iscoroutinefunction(app.service)
        self.executor: HandlerThreads | None = None
        if not self.is_async:
            self.executor = HandlerThreads(threads or app.threads, "smisk-service")
        # What the server calls instead of starting a task per request (see Server.start_cycle).
        self.serve_direct: Callable[[RequestCycle], None] | None = (
            None if self.is_async else self._start_sync
        )
        self._channels: dict[asyncio.AbstractEventLoop, Channel] = {}

    def close(self) -> None:
        """Release the handler threads (waits for running handlers)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    def _channel(self, loop: asyncio.AbstractEventLoop) -> Channel:
        channel = self._channels.get(loop)
        if channel is None:
            channel = self._channels[loop] = Channel(loop, threaded=not self.is_async)
        return channel

    def _new_objects(self, cycle: RequestCycle, channel: Channel) -> tuple[Request, Response]:
        app = self.app
        request, response = app.request_class(), app.response_class()
        template = app._template_request
        if template is not None:
            for name in LIMIT_ATTRIBUTES:
                setattr(request, name, getattr(template, name))
        request._attach(cycle, app, channel)
        request._proxies = self.proxies
        response._attach(cycle, app, channel, request)
        return request, response

    async def __call__(self, cycle: RequestCycle) -> None:
        loop = asyncio.get_running_loop()
        channel = self._channels.get(loop) or self._channel(loop)
        request, response = self._new_objects(cycle, channel)
        current_app.set(self.app)  # this task's own context: no reset needed
        current_request.set(request)
        current_response.set(response)
        try:
            if self.is_async:
                await self._serve_async(request, response)
            else:
                # Cancelled (the client went away), this waits for the thread: its next stream
                # call raises, and the upload files it may still be writing are removed after.
                assert self.executor is not None
                await self.executor.call(self._serve_sync, request, response)
            if response._file_to_stream is not None:
                await self._stream_file(cycle, response)
        finally:
            # Upload temp files go before the request ends: once the client has the response,
            # they are gone (also when the handler failed or the client left).
            if request._multipart is not None:
                await loop.run_in_executor(None, request._cleanup_files)
        cycle.end(response._take_pending())

    def _start_sync(self, cycle: RequestCycle) -> None:
        """Serve ``cycle`` without a task: a handler thread runs the service in a copy of the
        loop's context (as a task would get), and its outcome ends the request on the loop."""
        loop = cycle.protocol.loop
        request, response = self._new_objects(cycle, self._channel(loop))
        done = functools.partial(
            cycle.after_posted_output, self._sync_done, cycle, request, response
        )
        assert self.executor is not None
        try:
            self.executor.submit(
                loop, done, contextvars.copy_context().run, self._serve_sync, request, response
            )
        except RuntimeError as error:  # the threads are shut down: a 500, as in a task
            cycle.protocol.server.finish_cycle(cycle, error)

    def _sync_done(
        self,
        cycle: RequestCycle,
        request: Request,
        response: Response,
        result: None,
        error: BaseException | None,
    ) -> None:
        """On the loop, once the thread returned and its posted output was taken: end the
        request, or go on in a task."""
        server = cycle.protocol.server
        if request._multipart is not None or (
            error is None and response._file_to_stream is not None and not cycle.aborted
        ):
            rest = functools.partial(self._sync_rest, request, response, error)
            server.continue_in_task(cycle, rest)
            return
        if error is None and not cycle.aborted:  # aborted: a task would have been cancelled
            cycle.end(response._take_pending())
        server.finish_cycle(cycle, error)

    async def _sync_rest(
        self,
        request: Request,
        response: Response,
        error: BaseException | None,
        cycle: RequestCycle,
    ) -> None:
        """The rest of a sync request served without a task, in a task: the file to stream,
        then the upload files to remove (also after a failure or a disconnect)."""
        current_app.set(self.app)  # this task's own context: error() may need them
        current_request.set(request)
        current_response.set(response)
        try:
            if error is not None:
                raise error
            if cycle.aborted:
                raise ClientGone("the client went away")
            if response._file_to_stream is not None:
                await self._stream_file(cycle, response)
        finally:
            if request._multipart is not None:
                await asyncio.get_running_loop().run_in_executor(None, request._cleanup_files)
        cycle.end(response._take_pending())

    def _serve_sync(self, request: Request, response: Response) -> None:
        """In a handler thread, in the request's own context: the service and its ending."""
        app = self.app
        current_app.set(app)
        current_request.set(request)
        current_response.set(response)
        try:
            app.service()
            if not response.has_begun and response._file_to_stream is None:
                response.begin()
        except ClientGone:
            with _after_disconnect():
                request._finish_sync()
            raise
        except Exception:
            self._report(sys.exc_info(), response)
        request._finish_sync()

    async def _serve_async(self, request: Request, response: Response) -> None:
        # The form and session steps are awaited only when there is work for them: a request
        # without a body or a session then costs no extra coroutine.
        try:
            if request._form_kind() is not None:
                await request._aload_form()
            await self.app.service()
            if not response.has_begun and response._file_to_stream is None:
                response.begin()
        except (ClientGone, asyncio.CancelledError):
            with _after_disconnect():
                await request._afinish()
            raise
        except Exception:
            self._report(sys.exc_info(), response)
        if request._session_state is not None:
            await request._afinish()

    def _report(self, exc_info: Any, response: Response) -> None:
        try:
            self.app.error(*exc_info)
            if not response.has_begun:
                response.begin()
        except ClientGone:
            raise
        except Exception:
            log.exception("error() failed while reporting another error")
            if not response.has_begun:
                response._take_pending()
                response.headers = ["Status: 500 Internal Server Error", "Content-Type: text/plain"]
                response._file_to_stream = None
                response.begin()
                response.out.write(b"Internal Server Error\n")

    async def _stream_file(self, cycle: RequestCycle, response: Response) -> None:
        """Send the file named by ``send_file()`` ourselves: aiofiles reads it in a worker
        thread, writes wait for the client. The file is closed however the request ends."""
        path = response._file_to_stream
        assert path is not None
        try:
            handle, size = await _open_sized(path)
        except OSError as error:
            response._file_to_stream = None
            self._report((type(error), error, error.__traceback__), response)
            return
        try:
            try:
                length = response._file_headers(path, size)
                if not response.has_begun:
                    response.begin()
            except (TypeError, ValueError):  # a header the application set: nothing was sent
                response._file_to_stream = None
                self._report(sys.exc_info(), response)
                return
            await cycle.write(response._take_pending())
            await _send_file_body(cycle, handle, length, path)
        finally:
            # Shielded: a request cancelled while the close waits for a worker thread (the
            # client left) still closes its file.
            await asyncio.shield(_close_soon(handle))


async def _send_file_body(
    cycle: RequestCycle, handle: AsyncBufferedReader, length: int | None, path: str
) -> None:
    """Send exactly ``length`` bytes of the file (more may have been appended since it was
    opened), or all of it when no length was announced. A file that ends first cannot give
    what its head announced: the request is broken off, never padded or ended as complete."""
    remaining = length
    while remaining is None or remaining > 0:
        chunk = await handle.read(FILE_CHUNK if remaining is None else min(FILE_CHUNK, remaining))
        if not chunk:
            break
        await cycle.write(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    if remaining:
        cycle.break_off(f"{path} ended {remaining} bytes short of its Content-Length: {length}")


async def _open_sized(path: str) -> tuple[AsyncBufferedReader, int]:
    """Open ``path`` with aiofiles and read its size; a cancelled caller never leaks the file."""
    opening = asyncio.ensure_future(_open_and_stat(path))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _open_nonblocking(path: str, flags: int) -> int:
    # A FIFO without a writer blocks open() for good, holding an executor thread; opened
    # non-blocking it is refused below instead. Regular files read the same either way.
    return os.open(path, flags | os.O_NONBLOCK)


async def _open_and_stat(path: str) -> tuple[AsyncBufferedReader, int]:
    """Open ``path`` and read its size; anything but a regular file (a FIFO, a device such as
    ``/dev/zero`` that never ends, a socket) is an ``OSError`` naming it."""
    handle = await aiofiles.open(path, "rb", opener=_open_nonblocking)
    try:
        info = await asyncio.get_running_loop().run_in_executor(None, os.fstat, handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "send_file: not a regular file", path)
    except BaseException:
        await handle.close()
        raise
    return handle, info.st_size


_closing: set[asyncio.Task[None]] = set()  # closes in progress, kept until done


def _close_soon(handle: AsyncBufferedReader) -> asyncio.Task[None]:
    """Close ``handle`` in a task of its own, which nothing cancels."""
    task = asyncio.ensure_future(handle.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    return task


def _close_opened(future: asyncio.Future[tuple[AsyncBufferedReader, int]]) -> None:
    if not future.cancelled() and future.exception() is None:
        _close_soon(future.result()[0])


@contextlib.contextmanager
def _after_disconnect() -> Iterator[None]:
    """Around the end-of-request work of a request whose client left: the session is still
    written back and its lock freed; a failure there is logged, never raised."""
    try:
        yield
    except Exception:
        log.debug("session write-back after a disconnect failed", exc_info=True)


def stop_cycle(cycle: RequestCycle, page: bytes, reason: str) -> None:
    """End ``cycle`` now with ``page`` (or with nothing more, once output has begun) and stop
    its handler: an async one is cancelled; a sync one's next stream call raises ClientGone, so
    whatever it writes later is discarded and never reaches a newer request on the connection."""
    cycle.abort(ClientGone(reason))
    cycle.end(b"" if cycle.output_started else page)


# -- the classic bind / unbind / listening -----------------------------------------------------


def run_application(app: Application) -> None:
    """The classic blocking ``Application.run()``: serve until SIGINT/SIGTERM/SIGHUP or exit()."""
    listener = take_listener()
    _warn_public_tracebacks(app, listener)
    allocator.tune(allocator.keep_from_environ())
    if app.forks > 0:  # a supervisor keeps forks + 1 workers (smisk.runtime.workers)
        from smisk.runtime.workers import run_forked

        try:
            run_forked(app, listener)
        finally:
            forget(listener)
        return
    app.application_will_start()
    try:
        asyncio.run(_serve_until_stopped(app, listener))
    finally:
        forget(listener)
        app.application_did_stop()


def _warn_public_tracebacks(app: Application, listener: Listener) -> None:
    """One line in the log when tracebacks go to clients other machines may be: the classic
    default stays on, but a socket reachable from elsewhere usually means production."""
    address = listener.bound_address
    if app.show_traceback and not address.is_local:
        log.warning(
            "show_traceback is on and %s is reachable from other machines: error pages show "
            "tracebacks to clients (set show_traceback = False in production)",
            address,
        )


async def _serve_until_stopped(app: Application, listener: Listener) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    handler = ApplicationHandler(app)
    server = Server(handler)
    app._stop = lambda: loop.call_soon_threadsafe(stopped.set)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await server.start([listener])
        await stopped.wait()
        await server.close()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        app._stop = None
        await loop.run_in_executor(None, handler.close)
