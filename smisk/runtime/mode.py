"""Production and development mode: how much an error page tells the client.

Rules: one decision, made at start-up and applied to the application once per worker; nothing
here runs per request. Production hides everything but the status from clients (the log keeps
the traceback); development shows the traceback. ``None`` leaves the application as it is (the
classic ``Application.run()`` and ``smisk.serve()`` without ``env=``). The 500 page smisk writes
for a failing WSGI or ASGI application says only the status in every mode.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEVELOPMENT", "MODES", "PRODUCTION", "apply_mode", "check_mode"]

PRODUCTION = "production"
DEVELOPMENT = "development"
MODES = (PRODUCTION, DEVELOPMENT)


def check_mode(mode: str | None) -> str | None:
    """``mode`` if it names a mode (or is None); raises ``ValueError`` otherwise."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown environment {mode!r} (expected {' or '.join(MODES)})")
    return mode


def apply_mode(app: Any, mode: str | None) -> None:
    """Set a smisk Application's ``show_traceback`` for ``mode``.

    Production turns it off whatever the application set: a page that shows a traceback to
    every client is a development setting (``--debug``). Development leaves the application's
    own choice (the classic default is on).
    """
    if mode == PRODUCTION:
        app.show_traceback = False
