"""How a WSGI or ASGI application is called: ``wsgi`` (PEP 3333) and ``asgi`` (ASGI 3) turn a
server request cycle into the other interface's environ/scope and calls.

Rules: imports ``core`` (front-end normalisation, streams), ``server`` and below; never
``runtime``. ``smisk.wsgi`` and ``smisk.asgi`` are the public names.
"""

from __future__ import annotations

__all__: list[str] = []
