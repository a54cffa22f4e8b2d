# Rules: pure functions, no I/O. The one place that decides whether a response header may go on
# the wire; the classic Response, the WSGI and the ASGI adapters all call it, so no path lets a
# name or value through that another would refuse (a CR or LF would start a header line of the
# application's choosing: response splitting).
"""Response header validation: names are RFC 9110 tokens, values hold no control character but
HTAB (CR, LF and NUL included); a response's status is a final one (200-599)."""

from __future__ import annotations

import re

__all__ = ["FINAL_STATUSES", "check_header", "check_status", "split_header_line"]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110 §5.5: a field value is visible characters, spaces, HTAB and obs-text. CR and LF would
# start a line of the application's choosing; NUL, DEL and the other controls are invalid, and
# nginx passes them on to clients that then reject the response.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_FORBIDDEN_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A classic "Status:" line is the CGI status, not a header: three digits and an optional reason.
_STATUS_VALUE = re.compile(r"([0-9]{3})(?: .*)?")
# RFC 9110: valid codes are 100-599, and 1xx are interim, never a response's final status.
# nginx answered 502 below 100 and passed 1xx and four digits on, which clients cannot parse.
FINAL_STATUSES = range(200, 600)


def check_header(name: str | bytes | bytearray, value: str | bytes | bytearray) -> None:
    """Raise unless ``name: value`` is one safe header line.

    ``name`` and ``value`` are both ``str`` or both bytes-like. ``TypeError`` for other types,
    ``ValueError`` for a control character other than HTAB (CR, LF, NUL, DEL...) in either, or a
    name that is not a token (empty, spaces, ``:``...).
    """
    if isinstance(name, str) and isinstance(value, str):
        unsafe = bool(_FORBIDDEN.search(name) or _FORBIDDEN.search(value))
        token = bool(_TOKEN.fullmatch(name))
    elif isinstance(name, bytes | bytearray) and isinstance(value, bytes | bytearray):
        unsafe = bool(_FORBIDDEN_BYTES.search(name) or _FORBIDDEN_BYTES.search(value))
        token = bool(_TOKEN_BYTES.fullmatch(name))
    else:
        raise TypeError(
            "a header name and value must both be str or both be bytes, not "
            f"{type(name).__name__} and {type(value).__name__}"
        )
    if unsafe:
        raise ValueError(f"header contains a control character: {name!r}: {value!r}")
    if not token:
        raise ValueError(f"invalid header name {name!r}: it must be a token")


def check_status(code: int) -> None:
    """Raise ``ValueError`` unless ``code`` is a final HTTP status (200-599)."""
    if code not in FINAL_STATUSES:
        raise ValueError(f"invalid status {code!r}: a response's status is 200-599")


def split_header_line(line: str | bytes | bytearray) -> tuple[str, str]:
    """Split a classic header line ``"Name: value"`` into a checked name and value.

    ``TypeError`` unless ``line`` is a ``str`` (a bytes line is refused, not dropped);
    ``ValueError`` for a control character other than HTAB in it, no ``:``, a name that is not a token, or a
    ``Status`` that is not a final status code (200-599) with an optional reason.
    """
    if not isinstance(line, str):
        raise TypeError(f"header lines must be str, not {type(line).__name__}: {line!r}")
    if _FORBIDDEN.search(line):
        raise ValueError(f"header line contains a control character: {line!r}")
    name, colon, value = line.partition(":")
    if not colon:
        raise ValueError(f"header line without ':': {line!r}")
    value = value.strip(" \t")
    check_header(name, value)
    if name.lower() == "status":
        status = _STATUS_VALUE.fullmatch(value)
        if not status or int(status.group(1)) not in FINAL_STATUSES:
            raise ValueError(f"invalid Status {value!r}: it must be a code like '404 Not Found'")
    return name, value
