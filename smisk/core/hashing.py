# Rules: no I/O; never raises for any object.
"""``object_hash``: a hash of any Python object, hashable or not (used for session change detection)."""

from __future__ import annotations

import marshal
from typing import Any

__all__ = ["object_hash"]


def object_hash(obj: Any) -> int:
    """Calculate a hash from any Python object.

    ``hash(obj)`` when ``obj`` is hashable; otherwise the hash of its ``marshal`` serialization, so
    dicts, lists and sets of plain values hash by content; objects that can be neither hashed nor
    marshalled all give ``hash(None)``. Like ``hash``, the value is only stable within one process.
    """
    # Any failure (unhashable type, a __hash__ that raises, unmarshallable contents) falls through
    # to the next rule, as in the original: this function must never fail a request.
    try:
        return hash(obj)
    except Exception:
        pass
    try:
        return hash(marshal.dumps(obj))
    except Exception:
        return hash(None)
