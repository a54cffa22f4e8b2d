"""Sessions: a visit counter kept on the server, found again through the ``SID`` cookie.

* ``FileApp``: the default file store (a sync ``service()``; the file I/O runs in its thread).
  ``smisk-serve examples.sessions:FileApp --bind 127.0.0.1:5000``
* ``RedisApp``: Redis, for several workers or machines (``pip install 'smisk[redis]'``), with an
  ``async def service()``, which loads the session explicitly with ``await``.
  ``SMISK_REDIS_URL=redis://localhost:6379/0 smisk-serve examples.sessions:RedisApp --bind ...``

``/logout`` ends the session (the store forgets it, the cookie is expired).
"""

from __future__ import annotations

import os

from smisk.core import Application
from smisk.sessions import FileSessionStore


class FileApp(Application):
    def application_will_start(self) -> None:
        directory = os.environ.get("SMISK_SESSION_DIR")  # default: a private temp directory
        prefix = os.path.join(directory, "sess.") if directory else None
        self.sessions = FileSessionStore(prefix, locking=True)

    def service(self) -> None:
        self.response.headers.append("Content-Type: text/plain")
        if self.request.url.path.endswith("/logout"):
            self.request.session = None
            self.response("bye\n")
            return
        session = self.request.session or {"visits": 0}
        session["visits"] += 1
        self.request.session = session
        self.response(f"visit #{session['visits']}\n")


class RedisApp(Application):
    def application_will_start(self) -> None:
        from smisk.sessions.redis import RedisSessionStore

        url = os.environ.get("SMISK_REDIS_URL", "redis://localhost:6379/0")
        self.sessions = RedisSessionStore(url, locking=True)

    async def service(self) -> None:
        self.response.headers.append("Content-Type: text/plain")
        session = await self.request.load_session() or {"visits": 0}
        if self.request.url.path.endswith("/logout"):
            self.request.session = None
            await self.response.awrite("bye\n")
            return
        session["visits"] += 1
        self.request.session = session
        await self.response.awrite(f"visit #{session['visits']}\n")
