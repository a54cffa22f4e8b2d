# Rules: no I/O. Parsing never raises: input it cannot make sense of gives an all-None URL, as the
# classic Smisk did. Percent-coding and query parsing live in smisk.codec; this module only
# delegates to it.
"""``URL``: the classic Smisk Uniform Resource Locator.

Attributes ``scheme``, ``user``, ``password``, ``host``, ``path``, ``query``, ``fragment`` (``str``
or ``None``) and ``port`` (``int``, 0 = unknown), all writable; ``to_s(...)`` with per-component
overrides; ``uri``; static ``encode``/``escape``/``decode``/``unescape``/``decompose_query``.
"""

from __future__ import annotations

import enum
from typing import Any, AnyStr

from smisk.codec import decompose_query, url_decode, url_encode, url_escape

__all__ = ["URL"]


class _S(enum.Enum):
    """Parser states, in the order the parts of ``scheme://user:password@host:port/uri`` come."""

    PROTO = enum.auto()
    USER = enum.auto()
    PASS = enum.auto()
    HOST = enum.auto()
    PORT = enum.auto()
    URI = enum.auto()


class _GiveUp(Exception):
    """The input cannot be a URL; the caller leaves every field unset."""


class _Parser:
    """The classic state machine over ``proto -> user -> pass -> host -> port -> uri``.

    Differences from the original (each a documented defect there): ``?`` and ``#`` end the
    authority like ``/`` does; ``[...]`` is an IPv6 literal; a ``/`` after scheme-less text starts
    a relative path instead of giving up.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts: dict[_S, str] = dict.fromkeys(_S, "")
        self.state = _S.PROTO

    def run(self) -> dict[_S, str]:
        pos = 0
        while pos < len(self.text):
            pos = self._step(pos)
        self._finish()
        return self.parts

    def _step(self, pos: int) -> int:
        ch = self.text[pos]
        if self.state is _S.URI:
            self.parts[_S.URI] += ch
        elif ch == ":":
            return self._colon(pos)
        elif ch == "@":
            self._at()
        elif ch in "/?#":
            self._start_uri(ch)
        elif ch == "[" and self.state in (_S.PROTO, _S.USER, _S.HOST) and not self._current():
            return self._bracketed(pos)
        else:
            self.parts[self.state] += ch
        return pos + 1

    def _current(self) -> str:
        return self.parts[self.state]

    def _move(self, source: _S, target: _S) -> None:
        self.parts[target], self.parts[source] = self.parts[source], ""

    def _colon(self, pos: int) -> int:
        if self.state is _S.PROTO:
            if self.text.startswith("//", pos + 1):
                self.state = _S.USER
                return pos + 3
            self._move(_S.PROTO, _S.USER)  # "localhost:8080", "user:pass@host"
            self.state = _S.PASS
        elif self.state is _S.USER:
            self.state = _S.PASS
        elif self.state is _S.HOST:
            self.state = _S.PORT
        else:
            raise _GiveUp
        return pos + 1

    def _at(self) -> None:
        if self.state is _S.PROTO:
            self._move(_S.PROTO, _S.USER)
        elif self.state not in (_S.USER, _S.PASS):
            raise _GiveUp
        self.state = _S.HOST

    def _start_uri(self, ch: str) -> None:
        if self.state is _S.PROTO and self.parts[_S.PROTO]:
            if ch == "/":  # "foo/bar": a relative path
                self._move(_S.PROTO, _S.URI)
            else:  # "localhost?x=1": what came first was a host
                self._move(_S.PROTO, _S.HOST)
        else:
            self._authority_done()
        self.state = _S.URI
        self.parts[_S.URI] += ch

    def _authority_done(self) -> None:
        """Without an ``@``, what was read as user[:password] was really host[:port]."""
        if self.state is _S.USER:
            self._move(_S.USER, _S.HOST)
        elif self.state is _S.PASS:
            self._move(_S.USER, _S.HOST)
            self._move(_S.PASS, _S.PORT)

    def _bracketed(self, pos: int) -> int:
        end = self.text.find("]", pos)
        if end < 0:
            raise _GiveUp
        self.parts[self.state] += self.text[pos : end + 1]
        return end + 1

    def _finish(self) -> None:
        if self.state is _S.PROTO:
            self._move(_S.PROTO, _S.HOST)  # "localhost"
        else:
            self._authority_done()


def _leading_int(text: str) -> int:
    digits = len(text) - len(text.lstrip("0123456789"))
    return int(text[:digits]) if digits else 0


def _split_uri(uri: str) -> tuple[str | None, str | None, str | None]:
    """Split at the first ``#``, and at the first ``?`` before it."""
    rest, hash_sign, fragment = uri.partition("#")
    path, question_mark, query = rest.partition("?")
    return path or None, query if question_mark else None, fragment if hash_sign else None


def _keep(arg: object) -> bool:
    """``to_s`` arguments: absent, ``True`` or ``1`` mean "use the stored value"."""
    return arg is True or (type(arg) is int and arg == 1)


def _pick(arg: object, stored: str | None) -> str | None:
    """A component for ``to_s``: the stored value, a non-empty string override, or nothing."""
    if _keep(arg):
        return stored
    if isinstance(arg, str) and arg:
        return arg
    return None


def _as_text(obj: object) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, bytes | bytearray):
        try:
            return bytes(obj).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(obj).decode("latin-1")
    return str(obj)


class URL:
    """Uniform Resource Locator.

    ``URL()`` is empty; ``URL(other_url)`` is a shallow copy; anything else is converted to ``str``
    (bytes are decoded as UTF-8, else latin-1) and parsed. Parsing never raises: input that cannot
    be a URL (``http://a@b@c/``, ``http://a:b:c/``) leaves every field ``None`` and ``port`` 0.
    """

    __slots__ = ("fragment", "host", "password", "path", "port", "query", "scheme", "user")

    scheme: str | None
    user: str | None
    password: str | None
    host: str | None
    port: int
    path: str | None
    query: str | None
    fragment: str | None

    def __init__(self, obj: object = None) -> None:
        self._clear()
        if obj is None:
            return
        if isinstance(obj, URL):
            self._copy(obj)
        else:
            self._parse(_as_text(obj))

    def _clear(self) -> None:
        self.scheme = self.user = self.password = self.host = None
        self.path = self.query = self.fragment = None
        self.port = 0

    def _copy(self, other: URL) -> None:
        for name in URL.__slots__:
            setattr(self, name, getattr(other, name))

    def _parse(self, text: str) -> None:
        try:
            parts = _Parser(text).run()
        except _GiveUp:
            return
        self.scheme = parts[_S.PROTO].lower() or None
        self.user = parts[_S.USER] or None
        self.password = parts[_S.PASS] or None
        self.host = parts[_S.HOST] or None
        self.port = _leading_int(parts[_S.PORT])
        if parts[_S.URI]:
            self.path, self.query, self.fragment = _split_uri(parts[_S.URI])

    # -- string forms -----------------------------------------------------------------------------

    def to_s(
        self,
        scheme: object = True,
        user: object = True,
        password: object = True,
        host: object = True,
        port: object = True,
        port80: object = False,
        path: object = True,
        query: object = True,
        fragment: object = True,
    ) -> str:
        """String representation, with parts omitted or replaced.

        For each part: ``True`` or ``1`` (the default) uses the stored value, a non-empty ``str``
        is used instead of it, anything else (``False``, ``0``, ``''``, ``None``) omits it.
        ``port`` may also be a number to use instead of the stored port. Port 80 is left out
        unless ``port80`` is ``True``/``1``. Positional arguments are honoured in this order.
        """
        out: list[str] = []
        scheme_s = _pick(scheme, self.scheme)
        if scheme_s is not None:
            out += (scheme_s, "://")
        out.append(self._userinfo(user, password))
        out.append(_pick(host, self.host) or "")
        out.append(self._port_text(port, port80))
        out.append(_pick(path, self.path) or "")
        query_s = _pick(query, self.query)
        if query_s:
            out += ("?", query_s)
        fragment_s = _pick(fragment, self.fragment)
        if fragment_s is not None:
            out += ("#", fragment_s)
        return "".join(out)

    to_str = to_s

    def __str__(self) -> str:
        return self.to_s()

    def __repr__(self) -> str:
        # The password stays out of reprs: they end up in logs and tracebacks.
        return f"<{type(self).__name__} {self.to_s(password=False, port80=True)!r}>"

    def _userinfo(self, user: object, password: object) -> str:
        user_s = _pick(user, self.user)
        if user_s is None:
            return ""
        password_s = _pick(password, self.password)
        return f"{user_s}@" if password_s is None else f"{user_s}:{password_s}@"

    def _port_text(self, port: object, port80: object) -> str:
        if _keep(port):
            number = self.port
        elif isinstance(port, int):
            number = port
        else:
            return ""
        if number <= 0 or (number == 80 and not _keep(port80)):
            return ""
        return f":{number}"

    @property
    def uri(self) -> str | None:
        """Path, ``?query`` (when not empty) and ``#fragment`` (when not None); None if none."""
        if self.path is None and not self.query and self.fragment is None:
            return None
        out = self.path or ""
        if self.query:
            out += "?" + self.query
        if self.fragment is not None:
            out += "#" + self.fragment
        return out

    # -- codecs -----------------------------------------------------------------------------------

    @staticmethod
    def encode(s: AnyStr) -> AnyStr:
        """Percent-encode reserved and unsafe characters: for path, query and fragment parts."""
        return url_encode(s)

    @staticmethod
    def escape(s: AnyStr) -> AnyStr:
        """Percent-encode unsafe characters only: for rendering whole URLs."""
        return url_escape(s)

    @staticmethod
    def decode(s: AnyStr) -> AnyStr:
        """Restore data encoded by ``encode`` or ``escape`` (``%HH`` sequences)."""
        return url_decode(s)

    unescape = decode

    @staticmethod
    def decompose_query(
        string: Any, charset: str | None = "utf-8", tolerant: bool = True
    ) -> dict[str, Any]:
        """Parse a query string into a dict; repeated keys give lists, keys without ``=`` None."""
        if isinstance(string, bytearray | memoryview):
            string = bytes(string)
        elif not isinstance(string, str | bytes):
            string = str(string)
        result: dict[str, Any] = decompose_query(string, charset=charset, tolerant=tolerant)
        return result
