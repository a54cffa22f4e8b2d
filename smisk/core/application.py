"""Application: the classic entry point. Subclass it and override ``service()``.

Rules: one Application per process (``Application.current``); ``request`` and ``response`` resolve
to the current request's objects (ContextVars), also inside handler threads. ``service()`` may be a
plain method (run in a bounded thread pool) or ``async def`` (run on the loop).
"""

from __future__ import annotations

import logging
import os
import traceback
from types import TracebackType
from typing import Any, ClassVar

from smisk.core.context import current_request, current_response
from smisk.core.errorpage import error_fragment, error_page, status_fragment, status_line
from smisk.core.http_request import Request
from smisk.core.http_response import Response

__all__ = ["Application"]

log = logging.getLogger("smisk")

DEFAULT_THREADS = 32  # handler threads for a sync service(): blocking handlers in parallel


def error_status(error: BaseException | None) -> int:
    """The HTTP status an exception asks for (``status`` attribute, 400-599), else 500."""
    status = getattr(error, "status", 500)
    return status if isinstance(status, int) and 400 <= status <= 599 else 500


class Application:
    """A FastCGI application."""

    __module__ = "smisk.core"  # the classic, documented home: repr shows smisk.core.Application

    current: ClassVar[Application | None] = None

    request_class: type[Request] = Request
    response_class: type[Response] = Response
    sessions_class: Any = None
    forks: int = 0
    show_traceback: Any = True
    charset: str = "utf-8"
    tolerant: bool = True
    threads: int = DEFAULT_THREADS
    sendfile_header: str | None = None  # None: chosen from SERVER_SOFTWARE; "": server streams

    _template_request: Request | None = None
    _template_response: Response | None = None
    _sessions: Any = None
    _stop: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Application:
        instance = super().__new__(cls)
        Application.current = instance
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accepts and ignores any arguments, as the classic Application did."""

    # -- the current request -----------------------------------------------------------------

    @property
    def request(self) -> Request:
        """The current request (outside a request: a template whose settings every request
        copies, e.g. ``max_formdata_size`` set in ``application_will_start``)."""
        current = current_request.get()
        if current is not None:
            return current  # type: ignore[no-any-return]
        if self._template_request is None:
            self._template_request = self.request_class()
        return self._template_request

    @property
    def response(self) -> Response:
        """The current response."""
        current = current_response.get()
        if current is not None:
            return current  # type: ignore[no-any-return]
        if self._template_response is None:
            self._template_response = self.response_class()
        return self._template_response

    @property
    def sessions(self) -> Any:
        """The session store (created from ``sessions_class`` on first use)."""
        if self._sessions is None:
            factory = self.sessions_class
            if factory is None:
                from smisk.sessions import FileSessionStore

                factory = FileSessionStore
            self._sessions = factory()
        return self._sessions

    @sessions.setter
    def sessions(self, store: Any) -> None:
        self._sessions = store

    # -- lifecycle ---------------------------------------------------------------------------

    def application_will_start(self) -> None:
        """Called just before the application starts accepting requests."""

    def application_did_stop(self) -> None:
        """Called when the application has stopped accepting requests."""

    def service(self) -> Any:
        """Service a request. Override this; the default answers with a placeholder page."""
        pid = os.getpid()
        self.response(
            f"<html><head><title>Smisk instance #{pid}</title></head><body>"
            f"<h1>Smisk instance #{pid}</h1>\nNo services available</body></html>\n"
        )

    def run(self) -> None:
        """Serve until stopped: on the socket from ``bind()``, else the one on fd 0."""
        from smisk.runtime.handler import run_application

        run_application(self)

    def exit(self) -> None:
        """Stop accepting requests; the current one completes, then ``run()`` returns."""
        if self._stop is not None:
            self._stop()

    # -- errors ------------------------------------------------------------------------------

    def error(
        self, typ: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Answer with an XHTML error page (status 500, or the status the exception carries).

        Before output has begun, headers set so far are discarded and a complete page is sent;
        afterwards the fragment is appended to what was sent. With ``show_traceback`` true the
        page shows the escaped message, the traceback (for a 500) and the server's address; with
        it false (production) it shows only the status. The traceback is always logged.
        """
        status = error_status(val)
        details = "".join(traceback.format_exception(typ, val, tb))
        if status == 500:
            log.error("error while serving a request:\n%s", details.rstrip())
        else:
            log.info("request refused with %d: %s", status, val)
        response = self.response
        fragment = self._error_fragment(status, typ, val, details)
        if response.has_begun:
            response.write(fragment)
            return
        body = error_page(status_line(status), fragment).encode("utf-8")
        response._take_pending()
        response.headers = [
            f"Status: {status_line(status)}",
            "Content-Type: text/html; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-cache",
        ]
        if status == 503:
            response.headers.append("Retry-After: 5")
        response._file_to_stream = None
        response.begin()
        response.out.write(body)

    def _error_fragment(
        self, status: int, typ: type[BaseException] | None, val: BaseException | None, details: str
    ) -> str:
        if not self.show_traceback:
            # Production: the message may carry paths, hosts or data, and the footer names the
            # server; the client learns the status, the log has the rest.
            return status_fragment(status)
        message = "".join(traceback.format_exception_only(typ, val)).strip().splitlines()[-1:]
        env = self.request.env
        host, _, port = (env.get("SERVER_NAME") or env.get("HTTP_HOST") or "?").partition(":")
        port = port or env.get("SERVER_PORT", "?")
        software = (env.get("SERVER_SOFTWARE", "") + " smisk").strip()
        shown = details if status == 500 else "Additional information has been logged."
        heading = "Service Error" if status == 500 else status_line(status)
        return error_fragment(heading, "".join(message), shown, software, host, port)
