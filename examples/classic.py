#!/usr/bin/env python
"""A classic Smisk application, written the way Smisk 1.1 code was: ``smisk.core`` names, the
module-level ``request``/``response`` proxies, ``bind()`` and ``Application.run()``.

Run: ``python examples/classic.py 127.0.0.1:5000`` (or a unix socket path), or with no argument
under a launcher that passes the listening socket on fd 0 (spawn-fcgi, lighttpd ``bin-path``).
Nothing here is smisk-specific beyond what Smisk 1.1 had; it runs unchanged.
"""

import sys

from smisk.core import URL, Application, bind, request, response
from smisk.core.xml import escape


class MyApp(Application):
    def __init__(self):
        Application.__init__(self)
        self.hits = 0

    def application_will_start(self):
        # The documented place for per-process request settings.
        self.request.max_formdata_size = 1024 * 1024

    def service(self):
        self.hits += 1
        if request.url.path.endswith("/redirect"):
            response.headers = ["Status: 302 Found", "Location: /"]
            return
        name = request.get.get("name", "World")
        response.headers = ["Content-Type: text/html; charset=utf-8"]
        response.set_cookie("last_name", name, path="/")
        response(
            "<h1>Hello ", escape(name), "!</h1>\n",
            "<p>method ", request.method, ", path ", escape(request.url.path), "</p>\n",
            "<p>encoded: ", URL.encode(name), "</p>\n",
        )  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1:
        bind(sys.argv[1])
    MyApp().run()
