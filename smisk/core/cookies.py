# Rules: no I/O. Parsing is lenient and never raises (the Cookie header is client input);
# formatting is strict and refuses anything that could split or extend the header line.
"""Cookies: parse a ``Cookie`` header, format the value of a ``Set-Cookie`` header.

``parse_cookies`` behaves like the classic Smisk (``;`` separated, names and values
URL-decoded, repeated names give lists, a name without ``=`` maps to None, quotes kept).
``format_set_cookie`` takes the parameters of the classic ``Response.set_cookie`` in the same
order and emits RFC 6265 attributes that browsers honour today.
"""

from __future__ import annotations

import codecs
import datetime
import time
from email.utils import formatdate
from typing import Any

from smisk.codec import decompose_query, url_encode

__all__ = ["format_set_cookie", "parse_cookies"]

_SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}

# The clock used for Expires; a module attribute so tests can pin it.
_clock = time.time


def _usable_charset(charset: str | None) -> str | None:
    if charset is None:
        return None
    try:
        codecs.lookup(charset)
    except (LookupError, TypeError, ValueError):
        return "utf-8"
    return charset if "\x00" not in charset else "utf-8"


def parse_cookies(header: str | bytes | None, charset: str | None = "utf-8") -> dict[str, Any]:
    """Parse a ``Cookie`` header into a dict; never raises.

    ``a=1; b=x+y%20z; c="q"; a=2; d`` gives ``{'a': ['1', '2'], 'b': 'x y z', 'c': '"q"',
    'd': None}``. Values that are not valid in ``charset`` are decoded as latin-1; an unknown
    ``charset`` is replaced by UTF-8; ``charset=None`` decodes everything as latin-1.
    """
    if not header:
        return {}
    if not isinstance(header, str | bytes):
        header = str(header)
    result: dict[str, Any] = decompose_query(
        header, charset=_usable_charset(charset), tolerant=True, separator=";"
    )
    return result


def _encoded(what: str, value: str | bytes) -> str:
    """URL-encode a cookie name or value: safe by construction, decoded by ``parse_cookies``."""
    if isinstance(value, bytes):
        return url_encode(value).decode("ascii")
    if isinstance(value, str):
        return url_encode(value)
    raise TypeError(f"cookie {what} must be a str, not {type(value).__name__}")


def _checked(what: str, value: object) -> str:
    """An attribute value written as is: refuse what would end or extend the header line."""
    if not isinstance(value, str):
        raise TypeError(f"cookie {what} must be a str, not {type(value).__name__}")
    if any(ch == ";" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"cookie {what} must not contain ';', CR, LF or other controls: {value!r}")
    return value


def _http_date(when: float) -> str:
    """RFC 1123 date in GMT: ``Wed, 25 Nov 2026 18:53:06 GMT``."""
    return formatdate(when, usegmt=True)


def _expires_text(expires: datetime.datetime | float | str) -> str:
    if isinstance(expires, str):
        return _checked("expires", expires)
    if isinstance(expires, datetime.datetime):
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=datetime.UTC)  # naive datetimes are taken as UTC
        return _http_date(expires.timestamp())
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        return _http_date(float(expires))
    raise TypeError("cookie expires must be a datetime, a Unix time or a str")


def _lifetime(max_age: int | None, expires: datetime.datetime | float | str | None) -> list[str]:
    """Max-Age plus a matching Expires for clients that only know Expires."""
    attributes: list[str] = []
    if max_age is not None and max_age > -1:
        attributes.append(f"Max-Age={int(max_age)}")
        if expires is None:
            # Max-Age=0 deletes; an Expires in 1970 does so too, whatever the client's clock says.
            when = 0.0 if max_age == 0 else _clock() + max_age
            attributes.append(f"Expires={_http_date(when)}")
    if expires is not None:
        attributes.append(f"Expires={_expires_text(expires)}")
    return attributes


def _same_site(same_site: str | None, secure: bool) -> list[str]:
    if same_site is None:
        return []
    canonical = _SAME_SITE.get(str(same_site).lower())
    if canonical is None:
        raise ValueError(f"cookie same_site must be 'Strict', 'Lax' or 'None', not {same_site!r}")
    if canonical == "None" and not secure:
        raise ValueError(
            "cookie same_site='None' requires secure=True (browsers drop it otherwise)"
        )
    return [f"SameSite={canonical}"]


def format_set_cookie(
    name: str | bytes,
    value: str | bytes,
    comment: str | None = None,
    domain: str | None = None,
    path: str | None = None,
    secure: bool = False,
    version: int | None = 1,
    max_age: int | None = -1,
    http_only: bool = False,
    same_site: str | None = None,
    expires: datetime.datetime | float | str | None = None,
) -> str:
    """Build the value of a ``Set-Cookie`` header (``name=value; Version=1; ...``, no CRLF).

    ``name``, ``value`` and ``comment`` are URL-encoded (as in the classic Smisk, so any text is
    safe and ``parse_cookies`` gives it back); ``domain``, ``path`` and a ``str`` ``expires`` are
    written as is and must not contain ``;``, CR, LF or other controls (``ValueError``).
    ``version`` (default 1, as documented) is emitted unless None. ``max_age`` > -1 emits
    ``Max-Age`` with the matching ``Expires``; ``expires`` (datetime, Unix time or preformatted
    str) sets ``Expires`` explicitly. ``same_site`` is ``'Strict'``, ``'Lax'`` or ``'None'``
    (the last one needs ``secure``).
    """
    name_s = _encoded("name", name)
    if not name_s:
        raise ValueError("cookie name must not be empty")
    attributes = [f"{name_s}={_encoded('value', value)}"]
    if version is not None:
        attributes.append(f"Version={int(version)}")
    if comment is not None:
        attributes.append(f"Comment={_encoded('comment', comment)}")
    if domain is not None:
        attributes.append(f"Domain={_checked('domain', domain)}")
    if path is not None:
        attributes.append(f"Path={_checked('path', path)}")
    attributes += _lifetime(max_age, expires)
    if secure:
        attributes.append("Secure")
    if http_only:
        attributes.append("HttpOnly")
    attributes += _same_site(same_site, bool(secure))
    return "; ".join(attributes)
