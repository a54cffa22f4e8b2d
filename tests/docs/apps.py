"""Apps the deployment tests put behind each web server: they answer with what they received."""

from __future__ import annotations

import json
import os

from smisk.core import Application


class Echo(Application):
    """Answers with a JSON summary of the request: method, path, query, body size, params and the worker's pid."""

    def service(self) -> None:
        request = self.request
        body = request.input.read()
        env = request.env
        summary = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": len(body),
            "script_name": env.get("SCRIPT_NAME"),
            "path_info": env.get("PATH_INFO"),
            "request_uri": env.get("REQUEST_URI"),
            "server_software": env.get("SERVER_SOFTWARE"),
            "host": env.get("HTTP_HOST"),
            "pid": os.getpid(),
        }
        self.response.headers.append("Content-Type: application/json")
        self.response(json.dumps(summary), "\n")
