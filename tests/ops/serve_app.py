"""The application the smisk-serve tests run: ``/block`` sleeps in small steps until the gate
file (``$OPS_GATE``) exists, so a test opens the gate when it has seen what it waited for."""

from __future__ import annotations

import os
import time

from smisk.core import Application

STEP = 0.01  # seconds per sleep while the gate is closed


class App(Application):
    def service(self) -> None:
        path = self.request.url.path
        if path == "/block":
            gate = os.environ["OPS_GATE"]
            while not os.path.exists(gate):
                time.sleep(STEP)  # SLEEPING LINE
        self.response.headers.append("Content-Type: text/plain")
        self.response(f"pid={os.getpid()} path={path}\n")
