# Rules: no sockets, no asyncio, no knowledge of Request. Parsers are fed bytes chunk by chunk and
# never hold a whole multipart body in memory: field values are bounded one by one
# (max_field_size) and together (max_fields_size), file contents go straight to temp files. Those writes are plain *blocking* file I/O, so callers run
# MultipartParser.feed()/close()/cleanup() in a worker thread or an executor, never on the loop.
"""Request body parsers: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

Results follow the classic Smisk shapes: a key seen once maps to its value, a repeated key to a
list of values in order. Uploaded files are described by dicts with the keys ``filename``,
``content_type``, ``path`` (a private temp file, mode 0600) and ``size``.
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import os
import stat
import tempfile
import unicodedata
import urllib.parse
from typing import IO, Any

from smisk.codec import decompose_query

__all__ = [
    "FormError",
    "MultipartParser",
    "RequestEntityTooLarge",
    "UrlEncodedParser",
    "parse_content_type",
    "remove_uploads_of",
    "sanitize_filename",
    "upload_prefix",
]

UPLOAD_PREFIX = "smisk-upload-"  # the classic name prefix, so operators recognise stray files
MAX_PART_HEADER_BYTES = 16 * 1024  # a part's header block is a few hundred bytes; stop abuse early
MAX_BOUNDARY_LENGTH = 256  # RFC 2046 allows 70; some leeway for sloppy clients, still bounded
MAX_PADDING_BYTES = 1024  # whitespace allowed after a delimiter (RFC 2046 transport padding)


def upload_prefix(pid: int | None = None) -> str:
    """Name prefix of the upload files of process ``pid`` (default: this process):
    ``smisk-upload-<pid>-``, so a supervisor can remove what a killed worker left."""
    return f"{UPLOAD_PREFIX}{os.getpid() if pid is None else pid}-"


def remove_uploads_of(pid: int, directory: str | None = None) -> int:
    """Remove the upload files the dead process ``pid`` left in ``directory`` (default: the
    temp directory): regular files of this user named with its prefix. Returns how many."""
    prefix, removed = upload_prefix(pid), 0
    try:
        entries = list(os.scandir(directory or tempfile.gettempdir()))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


class FormError(ValueError):
    """A request body that cannot be parsed; ``status`` is the HTTP status to answer with."""

    status: int = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class RequestEntityTooLarge(FormError):
    """A request body, field or part count over its limit (HTTP 413)."""

    status = 413


def _store(target: dict[str, Any], key: str, value: Any) -> None:
    """Add ``value`` under ``key``: the first value as is, a repeated key becomes a list."""
    if key not in target:
        target[key] = value
    elif isinstance(target[key], list):
        target[key].append(value)
    else:
        target[key] = [target[key], value]


def _decode_text(raw: bytes, charset: str, tolerant: bool) -> str:
    """Decode with ``charset``; when that fails and ``tolerant``, fall back to latin-1."""
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        if not tolerant:
            raise
        return raw.decode("latin-1")


def _known_charset(name: str | None, default: str) -> str:
    """``name`` if Python knows that codec, else ``default`` (clients may name anything)."""
    if not name:
        return default
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a name with NUL in it
        return default
    return name


# ---------------------------------------------------------------------------------------------
# application/x-www-form-urlencoded


class UrlEncodedParser:
    """Collect an urlencoded body up to ``limit`` bytes and parse it with ``decompose_query``.

    ``feed(chunk)`` raises ``RequestEntityTooLarge`` as soon as more than ``limit`` bytes arrived
    (a negative ``limit`` means no limit); ``close()`` returns the parsed dict, or raises it for a
    body of more than ``max_fields`` ``&``-separated fields (negative: no limit).
    """

    __slots__ = ("_body", "_charset", "_limit", "_max_fields", "_tolerant")

    def __init__(
        self, limit: int, charset: str, *, tolerant: bool = True, max_fields: int = -1
    ) -> None:
        self._limit = limit
        self._charset = charset
        self._tolerant = tolerant
        self._max_fields = max_fields
        self._body = bytearray()

    def feed(self, chunk: bytes) -> None:
        """Append a chunk of the body."""
        if 0 <= self._limit < len(self._body) + len(chunk):
            raise RequestEntityTooLarge(
                f"form data size limit exceeded: more than {self._limit} bytes"
            )
        self._body += chunk

    def close(self) -> dict[str, Any]:
        """Parse everything fed so far; keys map to ``str``, ``None`` (no ``=``) or lists."""
        body = bytes(self._body)
        self._body = bytearray()
        if not body:
            return {}
        # Counted before parsing: 9 MB of "k1=&k2=&..." made 900,000 entries, 110 MB.
        if 0 <= self._max_fields < body.count(b"&") + 1:
            raise RequestEntityTooLarge(
                f"too many fields in form data: more than {self._max_fields}"
            )
        result: dict[str, Any] = decompose_query(
            body, charset=self._charset, tolerant=self._tolerant
        )
        return result


# ---------------------------------------------------------------------------------------------
# Header parameters (Content-Type, Content-Disposition)


def _scan_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string body starting after the opening quote; only ``\\"`` and ``\\\\`` are
    escapes, so unescaped Windows paths sent by old browsers (``C:\\dir\\f.txt``) survive."""
    out: list[str] = []
    while pos < len(text):
        ch = text[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch == "\\" and text[pos + 1 : pos + 2] in ('"', "\\"):
            pos += 1
            ch = text[pos]
        out.append(ch)
        pos += 1
    return "".join(out), pos  # unterminated: take the rest, as browsers do


def _scan_value(text: str, pos: int) -> tuple[str, int]:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    if text[pos : pos + 1] == '"':
        return _scan_quoted(text, pos + 1)
    end = text.find(";", pos)
    end = len(text) if end < 0 else end
    return text[pos:end].strip(), end


def _scan_params(text: str) -> list[tuple[str, str]]:
    """Split ``;``-separated ``name=value`` parameters; names are lower-cased."""
    params: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos] in "; \t":
            pos += 1
        start = pos
        while pos < len(text) and text[pos] not in "=;":
            pos += 1
        name = text[start:pos].strip().lower()
        value = ""
        if text[pos : pos + 1] == "=":
            value, pos = _scan_value(text, pos + 1)
        if name:
            params.append((name, value))
    return params


def _decode_rfc2231(value: str) -> str | None:
    """Decode an RFC 2231 / RFC 5987 extended value ``charset'language'percent-encoded``."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return None
    charset, _language, encoded = parts
    raw = urllib.parse.unquote_to_bytes(encoded)
    try:
        return raw.decode(charset or "utf-8")
    except (ValueError, LookupError):  # undecodable, unknown charset, NUL in its name
        return raw.decode("latin-1")


def _merge_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Build the parameter dict; an extended ``name*=`` value wins over a plain ``name=``."""
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    for name, value in pairs:
        if name.endswith("*"):
            decoded = _decode_rfc2231(value)
            if decoded is not None:
                extended[name[:-1]] = decoded
        else:
            params.setdefault(name, value)
    params.update(extended)
    return params


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type (or Content-Disposition) value into a lower-cased type and its params.

    ``parse_content_type('multipart/form-data; boundary="a b"')`` gives
    ``('multipart/form-data', {'boundary': 'a b'})``. Parameter names are lower-cased, quoted values
    unquoted, RFC 2231 ``name*=`` values decoded. Never raises.
    """
    main, sep, rest = value.partition(";")
    return main.strip().lower(), _merge_params(_scan_params(rest) if sep else [])


def sanitize_filename(name: str) -> str:
    """Reduce a client-supplied file name to a bare name: no directories (``/`` or ``\\``), no
    NUL or other control characters, no surrounding whitespace; ``.``/``..`` become ``''``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch) != "Cc").strip()
    return "" if base in (".", "..") else base


# ---------------------------------------------------------------------------------------------
# multipart/form-data


class _State(enum.Enum):
    PREAMBLE = enum.auto()
    AFTER_DELIMITER = enum.auto()
    HEADERS = enum.auto()
    BODY = enum.auto()
    EPILOGUE = enum.auto()
    FAILED = enum.auto()


class _Part:
    """The part being parsed: what it is and where its bytes go."""

    __slots__ = ("charset", "content_type", "data", "file", "filename", "name", "path", "size")

    def __init__(self, name: str | None, filename: str | None, content_type: str, charset: str):
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.charset = charset
        self.data = bytearray()
        self.file: IO[bytes] | None = None
        self.path: str | None = None
        self.size = 0


def _boundary_bytes(boundary: bytes | str) -> bytes:
    """Validate a boundary (RFC 2046: 1-70 characters, no line breaks); ``str`` as latin-1."""
    if isinstance(boundary, str):
        try:
            boundary = boundary.encode("latin-1")
        except UnicodeEncodeError:
            raise FormError("invalid multipart boundary") from None
    if not 0 < len(boundary) <= MAX_BOUNDARY_LENGTH or b"\r" in boundary or b"\n" in boundary:
        raise FormError("invalid multipart boundary")
    return boundary


class MultipartParser:
    """Incremental ``multipart/form-data`` parser (RFC 7578 / RFC 2046).

    Feed the body with ``feed(chunk)`` in pieces of any size, then call ``close()``. Results:
    ``fields`` (name -> ``str`` or list of ``str``; empty values are dropped, as the classic Smisk
    did) and ``files`` (name -> file dict or list of file dicts). A negative limit disables it:

    * ``max_size``: total body bytes -> ``RequestEntityTooLarge``;
    * ``max_parts``: number of parts -> ``RequestEntityTooLarge``;
    * ``max_field_size``: bytes of one non-file field -> ``RequestEntityTooLarge``;
    * ``max_fields_size``: bytes of all non-file fields together, the memory one body may take
      (file parts go to disk and do not count) -> ``RequestEntityTooLarge``.

    A malformed body raises ``FormError`` (status 400). On any error the temp files written so far
    are removed; ``cleanup()`` removes the rest and is safe to call any number of times.
    """

    def __init__(
        self,
        boundary: bytes | str,
        *,
        max_size: int,
        max_parts: int,
        max_field_size: int,
        max_fields_size: int = -1,
        spool_dir: str | None,
        charset: str,
        tolerant: bool = True,
    ) -> None:
        boundary = _boundary_bytes(boundary)
        self.fields: dict[str, Any] = {}
        self.files: dict[str, Any] = {}
        self._delimiter = b"\r\n--" + boundary
        # The body's first delimiter has no CRLF before it; start the buffer with one so every
        # delimiter looks the same.
        self._buf = bytearray(b"\r\n")
        self._state = _State.PREAMBLE
        self._part: _Part | None = None
        self._received = 0
        self._parts = 0
        self._field_bytes = 0  # non-file field bytes held in memory, all parts together
        self._temp_paths: list[str] = []
        self._max_size = max_size
        self._max_parts = max_parts
        self._max_field_size = max_field_size
        self._max_fields_size = max_fields_size
        self._spool_dir = spool_dir
        self._charset = charset
        self._tolerant = tolerant

    # -- public API -----------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body (blocking writes for file parts)."""
        if self._state is _State.FAILED:
            raise FormError("multipart parser already failed")
        try:
            allowed = self._max_size - self._received
            self._received += len(chunk)
            if 0 <= allowed < len(chunk):
                # Parse what fits first: a malformed part before the limit is reported the
                # same however the body was split into chunks.
                self._parse(chunk[:allowed])
                raise RequestEntityTooLarge(
                    f"multipart size limit exceeded: more than {self._max_size} bytes"
                )
            self._parse(chunk)
        except BaseException:
            self._fail()
            raise

    def _parse(self, chunk: bytes) -> None:
        if self._state is _State.EPILOGUE:
            return  # the epilogue carries no data (RFC 2046); discard it
        self._buf += chunk
        self._run()

    def close(self) -> None:
        """Finish parsing; ``FormError`` if the closing delimiter never came."""
        if self._state is _State.EPILOGUE:
            return
        self._fail()
        raise FormError("malformed multipart body: closing boundary missing")

    def cleanup(self) -> None:
        """Close and remove every temp file this parser created (moved files are left alone)."""
        part = self._part
        if part is not None and part.file is not None:
            part.file.close()
            part.file = None
        paths, self._temp_paths = self._temp_paths, []
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    # -- state machine --------------------------------------------------------------------------

    def _run(self) -> None:
        steps = {
            _State.PREAMBLE: self._step_preamble,
            _State.AFTER_DELIMITER: self._step_after_delimiter,
            _State.HEADERS: self._step_headers,
            _State.BODY: self._step_body,
        }
        while self._state in steps and steps[self._state]():
            pass

    def _step_preamble(self) -> bool:
        index = self._buf.find(self._delimiter)
        if index < 0:
            self._keep_tail()
            return False
        del self._buf[: index + len(self._delimiter)]
        self._state = _State.AFTER_DELIMITER
        return True

    def _keep_tail(self) -> None:
        """Drop what cannot be the start of a delimiter; the tail may be one split by a chunk."""
        excess = len(self._buf) - (len(self._delimiter) - 1)
        if excess > 0:
            del self._buf[:excess]

    def _step_after_delimiter(self) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        if buf.startswith(b"--"):
            self._state = _State.EPILOGUE
            buf.clear()
            return False
        padding = len(buf) - len(buf.lstrip(b" \t"))
        if padding > MAX_PADDING_BYTES:
            raise FormError("malformed multipart body: too much padding after a boundary")
        rest = buf[padding:]
        if rest.startswith(b"\r\n"):
            del buf[: padding + 2]
            self._state = _State.HEADERS
            return True
        if b"\r".startswith(rest):  # the CRLF may still be on its way
            return False
        raise FormError("malformed multipart body: unexpected data after a boundary")

    def _step_headers(self) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        if buf.startswith(b"\r\n"):
            block, consumed = b"", 2
        else:
            end = buf.find(b"\r\n\r\n", 0, MAX_PART_HEADER_BYTES + 4)
            if end < 0:
                if len(buf) >= MAX_PART_HEADER_BYTES + 4:
                    raise FormError("malformed multipart body: part headers too long")
                return False
            block, consumed = bytes(buf[:end]), end + 4
        del buf[:consumed]
        self._begin_part(block)
        self._state = _State.BODY
        return True

    def _step_body(self) -> bool:
        buf = self._buf
        index = buf.find(self._delimiter)
        if index >= 0:
            self._part_data(bytes(buf[:index]))
            del buf[: index + len(self._delimiter)]
            self._end_part()
            self._state = _State.AFTER_DELIMITER
            return True
        safe = len(buf) - (len(self._delimiter) - 1)
        if safe > 0:
            self._part_data(bytes(buf[:safe]))
            del buf[:safe]
        return False

    def _fail(self) -> None:
        self._state = _State.FAILED
        self._buf = bytearray()
        self.cleanup()
        self._part = None

    # -- parts ----------------------------------------------------------------------------------

    def _begin_part(self, block: bytes) -> None:
        self._parts += 1
        if 0 <= self._max_parts < self._parts:
            raise RequestEntityTooLarge(
                f"too many parts in multipart body: more than {self._max_parts}"
            )
        headers = self._parse_part_headers(block)
        _, disposition = parse_content_type(headers.get("content-disposition", ""))
        content_type = headers.get("content-type", "")
        charset = _known_charset(parse_content_type(content_type)[1].get("charset"), self._charset)
        filename = disposition.get("filename")
        self._part = _Part(
            disposition.get("name") or None,  # a nameless part is skipped, not merged
            None if filename is None else sanitize_filename(filename),
            content_type,
            charset,
        )

    def _parse_part_headers(self, block: bytes) -> dict[str, str]:
        """Header name (lower-cased) -> value; folded lines are joined, the last duplicate wins."""
        text = _decode_text(block, self._charset, True)
        lines: list[str] = []
        for line in text.split("\r\n") if text else ():
            if line[:1] in (" ", "\t") and lines:
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise FormError("malformed multipart body: bad part header line")
            headers[name.strip().lower()] = value.strip()
        return headers

    def _part_data(self, data: bytes) -> None:
        part = self._part
        if part is None or part.name is None or not data:
            return
        part.size += len(data)
        if part.filename is None:
            self._hold_field_data(part, data)
            return
        if part.file is None:
            part.file = self._open_temp_file(part)
        part.file.write(data)

    def _hold_field_data(self, part: _Part, data: bytes) -> None:
        """Keep a field's bytes in memory, within the per-field and the all-fields limits."""
        if 0 <= self._max_field_size < part.size:
            raise RequestEntityTooLarge(
                f"form field {part.name!r} exceeds the limit of {self._max_field_size} bytes"
            )
        self._field_bytes += len(data)
        if 0 <= self._max_fields_size < self._field_bytes:
            raise RequestEntityTooLarge(
                "form data size limit exceeded: the fields hold more than "
                f"{self._max_fields_size} bytes"
            )
        part.data += data

    def _open_temp_file(self, part: _Part) -> IO[bytes]:
        # mkstemp creates the file O_EXCL with mode 0600 under an unpredictable name.
        fd, path = tempfile.mkstemp(prefix=upload_prefix(), dir=self._spool_dir)
        self._temp_paths.append(path)
        part.path = path
        return os.fdopen(fd, "wb")

    def _end_part(self) -> None:
        part, self._part = self._part, None
        if part is None or part.name is None:
            return
        if part.filename is None:
            if part.data:
                value = _decode_text(bytes(part.data), part.charset, self._tolerant)
                _store(self.fields, part.name, value)
            return
        self._finish_file(part, part.name)

    def _finish_file(self, part: _Part, key: str) -> None:
        if part.file is not None:
            part.file.close()
            part.file = None
        if part.filename == "" and part.size == 0:
            return  # an <input type=file> left empty: nothing was uploaded
        if part.path is None:
            self._open_temp_file(part).close()  # a real, empty file: give it a real path
        info = {
            "filename": part.filename,
            "content_type": part.content_type,
            "path": part.path,
            "size": part.size,
        }
        _store(self.files, key, info)
