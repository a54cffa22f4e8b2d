"""Request: the current HTTP request, the classic way.

Rules: every attribute is computed on first access and cached for the request. Params are decoded
once here (UTF-8, undecodable bytes kept as surrogates); ``HTTP_PROXY`` is dropped and duplicate
``HTTP_*`` params are merged. Form bodies are parsed incrementally; uploads go to private temp
files that are removed when the request ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from smisk.codec import decompose_query, params_text
from smisk.core.channel import Channel
from smisk.core.cookies import parse_cookies
from smisk.core.forms import (
    MultipartParser,
    RequestEntityTooLarge,
    UrlEncodedParser,
    parse_content_type,
)
from smisk.core.frontend import (
    NO_PROXIES,
    TrustedProxies,
    merge_params,
    server_name,
    split_path,
    url_scheme,
)
from smisk.core.stream import Stream, _Sink
from smisk.core.url import URL

if TYPE_CHECKING:
    from smisk.core.application import Application
    from smisk.server import RequestCycle

__all__ = ["Request"]

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MULTIPART_MAX_PARTS = 1000  # parts per multipart body: bounds the work one request can cause
FORMDATA_MAX_FIELDS = 1000  # fields per urlencoded body: as many as a multipart body may have
MULTIPART_MAX_FIELD = 10 * 1024 * 1024  # bytes of one non-file field held in memory
# Bytes of form data held in memory: an urlencoded body, or all non-file fields of a multipart
# body together (file parts go to disk). The classic default, about 10 MB.
MAX_FORMDATA_SIZE = 10737418
# The limits a request copies from its application's template request (``app.request`` outside
# a request, set e.g. in ``application_will_start``).
LIMIT_ATTRIBUTES = (
    "max_formdata_size",
    "max_formdata_fields",
    "max_multipart_size",
    "max_multipart_parts",
    "max_multipart_field_size",
)
PARSE_CHUNK = 256 * 1024  # bytes read from the body per parser step


def _merge_params(params: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The params as text: UTF-8, undecodable bytes kept as surrogates (lossless)."""
    env = params_text(params)
    if len(env) != len(params):  # duplicate names: merge HTTP_* ones by the front-end rules
        env = params_text(merge_params(params).items())
    env.pop("HTTP_PROXY", None)  # httpoxy: a client header must never look like configuration
    return env


class _Kept:
    """The raw chunks of a body that is put back into ``input`` after parsing."""

    __slots__ = ("_chunks", "_keep")

    def __init__(self, keep: bool) -> None:
        self._keep = keep
        self._chunks: list[bytes] = []

    def append(self, chunk: bytes) -> None:
        if self._keep:
            self._chunks.append(chunk)

    def data(self) -> bytes:
        return b"".join(self._chunks)


class _ErrorSink(_Sink):
    """Sends a request's ``errors`` stream to the front end as FastCGI STDERR."""

    def __init__(self, cycle: RequestCycle, channel: Channel) -> None:
        self._cycle, self._channel = cycle, channel
        self._pending: list[bytes] = []

    def emit(self, data: bytes) -> None:
        self._pending.append(data)
        if data.endswith(b"\n"):
            self.flush()

    def _take(self) -> bytes:
        data = b"".join(self._pending)
        self._pending.clear()
        return data

    def flush(self) -> None:
        data = self._take()
        if not data:
            return
        if self._channel.threaded:
            self._channel.block(self._cycle.write_stderr, data)
        else:
            self._cycle.protocol.send_stderr(self._cycle.request_id, data)

    async def aflush(self) -> None:
        data = self._take()
        if data:
            await self._cycle.write_stderr(data)


class Request:
    """A HTTP request: environment, query, form, files, cookies and the raw input stream."""

    __module__ = "smisk.core"  # the classic, documented home

    max_multipart_size: int = 2147483648  # 2 GB; < 0 disables the limit, 0 disables parsing
    # ~10 MB of form data in memory (urlencoded body, multipart fields together); < 0 disables
    # the limit, 0 disables urlencoded parsing (multipart fields then keep the default)
    max_formdata_size: int = MAX_FORMDATA_SIZE
    max_formdata_fields: int = FORMDATA_MAX_FIELDS  # fields per urlencoded body; < 0: no limit
    max_multipart_parts: int = MULTIPART_MAX_PARTS  # parts per multipart body
    max_multipart_field_size: int = MULTIPART_MAX_FIELD  # bytes of one non-file field

    _cycle: RequestCycle | None = None
    _app: Application | None = None
    _channel: Channel | None = None
    _proxies: TrustedProxies = NO_PROXIES  # whose X-Forwarded-Proto url believes (the handler's)
    _cache: dict[str, Any]
    _multipart: MultipartParser | None = None
    _input: Stream | None = None
    _errors: Stream | None = None

    def __init__(self) -> None:
        self._cache = {}

    def _attach(self, cycle: RequestCycle, app: Application, channel: Channel) -> None:
        self._cycle, self._app, self._channel = cycle, app, channel
        self._cache = {}

    # -- raw data ----------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The FastCGI params as a dict of str."""
        env = self._cache.get("env")
        if env is None:
            params = self._cycle.params if self._cycle is not None else []
            env = self._cache["env"] = _merge_params(params)
        return env

    @property
    def input(self) -> Stream:
        """The request body stream."""
        if self._input is None:
            self._input = Stream(self._require_channel(), source=self._require_cycle().body)
        return self._input

    @property
    def errors(self) -> Stream:
        """A stream to the web server's error log (FastCGI STDERR)."""
        if self._errors is None:
            channel = self._require_channel()
            self._errors = Stream(channel, sink=_ErrorSink(self._require_cycle(), channel))
        return self._errors

    def log_error(self, message: str) -> None:
        """Write ``message`` to the web server's error log, prefixed with program name and pid."""
        if not isinstance(message, str):
            raise TypeError("first argument must be a string")
        if self._cycle is None:
            raise OSError(
                "request.errors stream not initialized. Only makes sense during an active request."
            )
        program = os.path.basename(sys.argv[0]) or "python"
        line = f"{program}[{os.getpid()}] {message}"
        self.errors.write(line if line.endswith("\n") else line + "\n")
        self.errors.flush()

    def __iter__(self) -> Any:
        return iter(self.input)

    def _require_cycle(self) -> RequestCycle:
        if self._cycle is None:
            raise OSError("no active request")
        return self._cycle

    def _require_channel(self) -> Channel:
        if self._channel is None:
            raise OSError("no active request")
        return self._channel

    # -- derived attributes ------------------------------------------------------------------

    @property
    def method(self) -> str | None:
        """The HTTP method ("GET", "POST", ...)."""
        return self.env.get("REQUEST_METHOD")

    @property
    def is_active(self) -> bool:
        """True while this request is being served and its client is still there."""
        return self._cycle is not None and self._cycle.is_active

    @property
    def url(self) -> URL:
        """The URL of the request, rebuilt from the params."""
        url = self._cache.get("url")
        if url is None:
            url = self._cache["url"] = _url_from_env(self.env, self._proxies)
        return url

    @property
    def referring_url(self) -> URL | None:
        """``URL(HTTP_REFERER)``, or None without a referrer."""
        referer = self.env.get("HTTP_REFERER")
        return URL(referer) if referer is not None else None

    @property
    def charset(self) -> str:
        """The charset used to decode query strings, forms and cookies."""
        return self._app.charset if self._app is not None else "utf-8"

    @property
    def tolerant(self) -> bool:
        """Whether undecodable text falls back to latin-1 instead of raising."""
        return bool(getattr(self._app, "tolerant", True))

    @property
    def get(self) -> dict[str, Any]:
        """Parameters of the query string."""
        parsed = self._cache.get("get")
        if parsed is None:
            query = self.env.get("QUERY_STRING", "")
            parsed = decompose_query(query, self.charset, self.tolerant) if query else {}
            self._cache["get"] = parsed
        return parsed

    @property
    def cookies(self) -> dict[str, Any]:
        """Cookies sent with the request."""
        parsed = self._cache.get("cookies")
        if parsed is None:
            header = self.env.get("HTTP_COOKIE", "")
            parsed = parse_cookies(header, self.charset) if header else {}
            self._cache["cookies"] = parsed
        return parsed

    # -- form bodies -------------------------------------------------------------------------

    @property
    def post(self) -> dict[str, Any]:
        """Fields of a urlencoded or multipart POST body."""
        self._ensure_form()
        return self._cache["post"]  # type: ignore[no-any-return]

    @property
    def files(self) -> dict[str, Any]:
        """Files uploaded in a multipart body: dicts with filename, content_type, path, size."""
        self._ensure_form()
        return self._cache["files"]  # type: ignore[no-any-return]

    def _form_kind(self) -> tuple[str, dict[str, str]] | None:
        """The body's form type and its parameters, or None when it is not parsed as a form."""
        if "post" in self._cache:
            return None
        if self._cycle is None or self._cycle.body.at_eof:  # no body (left): nothing to parse
            self._cache["post"], self._cache["files"] = {}, {}
            return None
        mime, options = parse_content_type(self.env.get("CONTENT_TYPE", ""))
        if mime == URLENCODED and self.max_formdata_size != 0:
            return mime, options
        if mime == MULTIPART and self.max_multipart_size != 0 and options.get("boundary"):
            return mime, options
        self._cache["post"], self._cache["files"] = {}, {}
        return None

    def _content_length(self) -> int | None:
        text = self.env.get("CONTENT_LENGTH", "").strip()
        return int(text) if text.isdigit() else None

    def _new_parser(self, kind: tuple[str, dict[str, str]]) -> UrlEncodedParser | MultipartParser:
        mime, options = kind
        length = self._content_length()
        if mime == URLENCODED:
            limit = self.max_formdata_size
            if length is not None and 0 <= limit < length:
                raise RequestEntityTooLarge("form data size limit exceeded")
            return UrlEncodedParser(
                limit, self.charset, tolerant=self.tolerant, max_fields=self.max_formdata_fields
            )
        limit = self.max_multipart_size if self.max_multipart_size > 0 else sys.maxsize
        if length is not None and length > limit:
            raise RequestEntityTooLarge("multipart data size limit exceeded")
        self._multipart = MultipartParser(
            options["boundary"].encode("latin-1", "replace"),
            max_size=limit,
            max_parts=self.max_multipart_parts,
            max_field_size=_tightest(self.max_multipart_field_size, self._fields_limit()),
            max_fields_size=self._fields_limit(),
            spool_dir=None,
            charset=self.charset,
        )
        return self._multipart

    def _fields_limit(self) -> int:
        """Bytes all non-file multipart fields may hold in memory together: the form data
        limit, as for an urlencoded body (its 0 only turns urlencoded parsing off)."""
        return self.max_formdata_size or MAX_FORMDATA_SIZE

    def _store_form(self, parser: UrlEncodedParser | MultipartParser) -> None:
        if isinstance(parser, UrlEncodedParser):
            self._cache["post"], self._cache["files"] = parser.close(), {}
        else:
            parser.close()
            self._cache["post"], self._cache["files"] = parser.fields, parser.files

    def _ensure_form(self) -> None:
        """Parse a form body (blocking: sync handlers; async ones had it parsed beforehand)."""
        kind = self._form_kind()
        if kind is None:
            return
        stream = self.input
        with self._parsing(kind) as (parser, kept):
            while chunk := stream.read1(PARSE_CHUNK):
                parser.feed(chunk)
                kept.append(chunk)
            self._store_form(parser)

    async def _aload_form(self) -> None:
        """Parse a form body on the loop; multipart file writes go to a worker thread."""
        kind = self._form_kind()
        if kind is None:
            return
        loop = self._require_channel().loop
        stream = self.input
        with self._parsing(kind) as (parser, kept):
            while chunk := await stream.aread1(PARSE_CHUNK):
                if isinstance(parser, MultipartParser):
                    await loop.run_in_executor(None, parser.feed, chunk)
                else:
                    parser.feed(chunk)
                    kept.append(chunk)
            if isinstance(parser, MultipartParser):
                await loop.run_in_executor(None, self._store_form, parser)
            else:
                self._store_form(parser)

    @contextlib.contextmanager
    def _parsing(
        self, kind: tuple[str, dict[str, str]]
    ) -> Iterator[tuple[UrlEncodedParser | MultipartParser, _Kept]]:
        """A parser for the body; afterwards an urlencoded body is put back into ``input``
        (it is small and was held anyway), so the raw body stays readable in both modes. A
        failed parse leaves post and files empty instead of re-parsing the rest later."""
        parser = self._new_parser(kind)
        kept = _Kept(keep=isinstance(parser, UrlEncodedParser))
        try:
            yield parser, kept
        except BaseException:
            self._cache["post"], self._cache["files"] = {}, {}
            raise
        self.input._unread(kept.data())

    def _cleanup_files(self) -> None:
        """Remove upload temp files (blocking; run off the loop)."""
        if self._multipart is not None:
            self._multipart.cleanup()
            self._multipart = None

    # -- sessions (the work is done by smisk.sessions.binding) ------------------------------

    _session_state: Any = None

    def _session_binding(self) -> Any:
        if self._session_state is None:
            from smisk.sessions.binding import SessionBinding

            self._session_state = SessionBinding(self)
        return self._session_state

    @property
    def session(self) -> Any:
        """The current session's data (None for a new session); loaded on first access."""
        return self._session_binding().get()

    @session.setter
    def session(self, value: Any) -> None:
        self._session_binding().set(value)

    @property
    def session_id(self) -> str:
        """The current session id (a new one is issued when the client has none)."""
        return self._session_binding().get_id()  # type: ignore[no-any-return]

    @session_id.setter
    def session_id(self, value: str) -> None:
        self._session_binding().set_id(value)

    async def load_session(self) -> Any:
        """Load the session on the loop and return its data. An async ``service()`` awaits this
        before using ``session`` or ``session_id``; sync services load on first access."""
        return await self._session_binding().aload()

    def _response_headers(self) -> list[str]:
        """Header lines the request adds when output begins (e.g. a new session's cookie)."""
        if self._session_state is None:
            return []
        return self._session_state.response_headers()  # type: ignore[no-any-return]

    def _finish_sync(self) -> None:
        """End-of-request work in a handler thread (session write-back)."""
        if self._session_state is not None:
            self._session_state.finish_sync()

    async def _afinish(self) -> None:
        """End-of-request work on the loop (session write-back)."""
        if self._session_state is not None:
            await self._session_state.afinish()


def _tightest(*limits: int) -> int:
    """The smallest of ``limits``, where a negative one means no limit (-1 if all are)."""
    bounded = [limit for limit in limits if limit >= 0]
    return min(bounded) if bounded else -1


def _split_host(host: str) -> tuple[str, str]:
    """``("example.com", "8080")`` from ``example.com:8080``; IPv6 literals keep their brackets."""
    if host.startswith("[") and "]" in host:
        bracket = host.index("]")
        return host[: bracket + 1], host[bracket + 2 :]
    name, _, port = host.partition(":")
    return name, port


_URL_PARAMS = (
    "SCRIPT_NAME",
    "PATH_INFO",
    "REQUEST_URI",
    "HTTPS",
    "REQUEST_SCHEME",
    "REMOTE_ADDR",
    "HTTP_X_FORWARDED_PROTO",
    "SERVER_NAME",
    "SERVER_ADDR",
)


def _url_from_env(env: dict[str, str], proxies: TrustedProxies = NO_PROXIES) -> URL:
    """Rebuild the URL the client asked for.

    Scheme and path as WSGI and ASGI see them (``smisk.core.frontend``): the scheme from
    ``HTTPS``/``REQUEST_SCHEME`` (X-Forwarded-Proto behind one of ``proxies``), the path from
    the front end's split, which joined is the decoded ``REQUEST_URI`` path when there is one;
    host from ``HTTP_HOST`` (what the client asked for), else ``SERVER_NAME``; port from
    either of those, else ``SERVER_PORT`` unless a trusted proxy set the scheme; query from ``QUERY_STRING``, else ``REQUEST_URI``.
    """
    url = URL()
    raw = {  # the text env is lossless (surrogateescape): these are the params' bytes again
        name.encode("ascii"): env[name].encode("utf-8", "surrogateescape")
        for name in _URL_PARAMS
        if name in env
    }
    url.scheme = url_scheme(raw, proxies)
    url.user = env.get("REMOTE_USER") or None
    # No Host (HTTP/1.0): nginx sends it empty, and SERVER_NAME too without server_name.
    host, port_text = _split_host(
        env.get("HTTP_HOST") or server_name(raw).decode("utf-8", "surrogateescape")
    )
    # Front ends often pass HTTP_HOST without the port (Debian's nginx: ``$host``): then the
    # port is the one the front end listens on, unless a proxy set the scheme (as WSGI/ASGI's
    # ``request_host``): the client's port is the proxy's then, not known here.
    if not port_text and url.scheme == url_scheme(raw):
        port_text = env.get("SERVER_PORT", "")
    url.host = host or None
    url.port = int(port_text) if port_text.isdigit() else 0
    script, path_info, _raw = split_path(raw)
    if script or path_info:
        url.path = (script + path_info).decode("utf-8", "surrogateescape")
    _path, has_query, uri_query = env.get("REQUEST_URI", "").partition("?")
    url.query = env.get("QUERY_STRING", uri_query if has_query else None)
    return url
