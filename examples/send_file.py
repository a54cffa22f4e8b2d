"""send_file: let the front end send a file (nginx ``X-Accel-Redirect``, lighttpd and Apache
``X-Sendfile``), or have smisk stream it when the front end cannot.

Run: ``SMISK_FILES=/srv/files smisk-serve examples.send_file:App --bind 127.0.0.1:5000``;
``/files/NAME`` sends ``$SMISK_FILES/NAME``. The front end must be told where files may come
from (nginx: an ``internal`` location, see docs/deploy/nginx.md).
"""

from __future__ import annotations

import os

from smisk.core import Application


class App(Application):
    def service(self) -> None:
        root = os.environ.get("SMISK_FILES", "/srv/files")
        name = self.request.url.path.rpartition("/")[2]
        path = os.path.join(root, name)
        if not name or name.startswith(".") or not os.path.isfile(path):
            self.response.headers = ["Status: 404 Not Found", "Content-Type: text/plain"]
            self.response("no such file\n")
            return
        if "nginx" in self.request.env.get("SERVER_SOFTWARE", ""):
            # nginx wants a URI it maps onto the files (the `internal` location), not a path.
            self.response.headers.append(f"X-Accel-Redirect: /protected/{name}")
            self.response.headers.append("Content-Type: application/octet-stream")
            return
        self.response.send_file(path)  # X-Sendfile for lighttpd/Apache; else smisk streams it
