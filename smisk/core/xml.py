# Rules: no I/O; re-exports only. The work is done by smisk.codec (C twin when available).
"""XML functions."""

from __future__ import annotations

from typing import AnyStr

from smisk.codec import xml_escape, xml_unescape

__all__ = ["escape", "unescape"]


def escape(s: AnyStr) -> AnyStr:
    """Replace ``&``, ``<``, ``>`` and ``"`` with ``&amp;``, ``&lt;``, ``&gt;`` and ``&quot;``.

    Nothing else is touched (already-escaped text is escaped again). ``str`` in, ``str`` out;
    ``bytes`` in, ``bytes`` out; input needing no change is returned as the same object.
    ``TypeError`` for anything else.
    """
    return xml_escape(s)


def unescape(s: AnyStr) -> AnyStr:
    """Replace ``&amp;``, ``&lt;``, ``&gt;`` and ``&quot;``; other entities are left as they are."""
    return xml_unescape(s)
