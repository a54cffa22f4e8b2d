# Rules: no I/O; a thin, typed front to the standard library's json module.
"""JSON serialization (RFC 8259), as the classic documentation's examples use it.

``json_decode(request.input.read())`` takes the raw body (bytes in UTF-8, UTF-16 or UTF-32, or
text); ``json_encode(obj)`` gives ASCII-safe text, so it can be written with any response charset.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

__all__ = ["json_decode", "json_encode"]


def _default(obj: object) -> object:
    # Dates are the one non-JSON type web handlers routinely return; ISO 8601 is what JavaScript's
    # Date parses. Everything else fails loudly, as the standard encoder does.
    if isinstance(obj, datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def json_encode(obj: object) -> str:
    """Serialize ``obj`` to a JSON document (``str``); dates become ISO 8601 strings, sets lists.

    Raises ``TypeError`` for objects JSON cannot represent and ``ValueError`` for circular ones.
    """
    return json.dumps(obj, default=_default)


def json_decode(s: str | bytes | bytearray) -> Any:
    """Parse a JSON document; raises ``ValueError`` (``json.JSONDecodeError``) on invalid input."""
    return json.loads(s)
