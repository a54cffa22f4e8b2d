"""``smisk.serialization``: the classic package path of ``smisk.core.serialization``."""

from __future__ import annotations

__all__: list[str] = []
