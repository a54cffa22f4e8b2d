"""Serialization helpers used by the classic documentation's examples (``json``)."""

from __future__ import annotations

__all__: list[str] = []
