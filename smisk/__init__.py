"""Smisk: an asyncio-native FastCGI application server with the classic Smisk API."""

from __future__ import annotations

from smisk._build import __build__
from smisk._version import __version__
from smisk.context import app, request, response

__all__ = ["__build__", "__version__", "app", "request", "response"]
