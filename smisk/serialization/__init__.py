"""Serialization helpers used by the classic documentation's examples (``smisk.serialization.json``)."""

from __future__ import annotations

__all__: list[str] = []
