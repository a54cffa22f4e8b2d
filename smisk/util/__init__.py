"""Small, dependency-free helpers shared by the classic API (``smisk.util.objectproxy``)."""

from __future__ import annotations

__all__: list[str] = []
