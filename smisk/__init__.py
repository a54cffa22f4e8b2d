"""Smisk: an asyncio-native FastCGI application server with the classic Smisk API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smisk._build import __build__
from smisk._version import __version__
from smisk.core.context import app, request, response

if TYPE_CHECKING:
    from smisk.runtime.embed import serve

__all__ = ["__build__", "__version__", "app", "request", "response", "serve"]


def __getattr__(name: str) -> Any:
    # smisk.serve is imported on first use: ``import smisk`` must not load the server.
    if name == "serve":
        from smisk.runtime.embed import serve

        return serve
    raise AttributeError(f"module 'smisk' has no attribute {name!r}")
