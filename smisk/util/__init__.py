"""``smisk.util``: the classic package path of ``smisk.util.objectproxy`` (see ``smisk.core``)."""

from __future__ import annotations

__all__: list[str] = []
