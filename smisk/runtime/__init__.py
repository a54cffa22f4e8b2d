"""How an application is run: the request handler that binds a core Application to a server
cycle, interface detection, embedding (``serve()``), the process model (workers, reload,
allocator), the development HTTP front end and operations (``ops``: status, logs, shedding).

Rules: the top layer below the entry points; it may import every layer under it, and nothing
but ``smisk.cli``, ``smisk.probe`` and the root ``smisk`` package imports it (one exception:
``Application.run()`` reaches ``runtime.handler`` at call time).
"""

from __future__ import annotations

__all__: list[str] = []
