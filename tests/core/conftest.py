"""Fixtures for the application suite: the test apps (sync and async) behind one real nginx.

One nginx fronts every app; each app gets its own nginx ``server`` (port), with the same
locations: ``/`` through a keep-alive upstream, and locations that override params
(``SERVER_SOFTWARE``, ``HTTPS``) or serve files named by ``X-Accel-Redirect``. Servers and nginx
live for the whole session; the ``mode`` fixture runs each test with a sync and an async app.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smisk.runtime.handler import ApplicationHandler
from tests.core.apps import MODES, make_app
from tests.support.fcgi_client import FastCGIClient
from tests.support.nginx import (
    FASTCGI_PARAMS,
    NGINX,
    Nginx,
    free_port,
    upstream_target,
    wait_for_port,
)
from tests.support.serving import ServerThread

# App kinds served per mode: the test app with default limits, one with small limits (413
# pages), one with the limits at 0 (bodies left unread) and sendfile_header = "" (no front-end
# sendfile: the server streams files itself).
KINDS: dict[str, dict[str, Any]] = {
    "main": {},
    "limits": {"max_formdata_size": 100, "max_multipart_size": 2000, "max_formdata_fields": 5},
    "zero": {"max_formdata_size": 0, "max_multipart_size": 0, "sendfile_header": ""},
    "quiet": {"show_traceback": False},
    "fields": {"max_formdata_size": 1000},  # multipart fields together; files unbounded
}

# Locations that change params the app sees; the last path segment stays the route.
SOFTWARE_LOCATIONS = {
    "lighttpd14": "lighttpd/1.4.59",
    "lighttpd": "lighttpd/2.0.0",
    "apache": "Apache/2.4.57 (Debian)",
    "unknown": "SomeServer/1.0",
}


class AppNginx(Nginx):
    """nginx with one ``server`` per backend, each on its own port."""

    def __init__(self, workdir: Path, backends: dict[str, str], files: Path) -> None:
        super().__init__(workdir, list(backends.values()))
        self.named = backends
        self.files = files
        self.ports = {name: free_port() for name in backends}

    def _server_block(self, name: str, address: str) -> str:
        overrides = "\n".join(
            f"""    location /{prefix}/ {{
      include {FASTCGI_PARAMS};
      fastcgi_param SERVER_SOFTWARE "{software}";
      fastcgi_pass up_{name};
      fastcgi_keep_conn on;
    }}"""
            for prefix, software in SOFTWARE_LOCATIONS.items()
        )
        return f"""
  upstream up_{name} {{
    server {upstream_target(address)};
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{self.ports[name]};
    location / {{
      include {FASTCGI_PARAMS};
      fastcgi_pass up_{name};
      fastcgi_keep_conn on;
    }}
    location /https/ {{
      include {FASTCGI_PARAMS};
      fastcgi_param HTTPS on;
      fastcgi_pass up_{name};
      fastcgi_keep_conn on;
    }}
{overrides}
    location /protected/ {{
      internal;
      alias {self.files}/;
    }}
  }}"""

    def config(self) -> str:
        base = super().config()
        blocks = "".join(self._server_block(n, a) for n, a in self.named.items())
        head, _, _ = base.partition("  upstream backend {")
        return head + blocks + "\n}\n"

    def __enter__(self) -> AppNginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(conf)])
        for port in self.ports.values():
            wait_for_port(port, self.proc)
        return self


class Web:
    """HTTP to one app through nginx."""

    def __init__(self, nginx: AppNginx, name: str, address: str) -> None:
        self.nginx = nginx
        self.name = name
        self.port = nginx.ports[name]
        self.address = address  # the app's FastCGI socket, for the raw client

    def request(
        self,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send a request; header names in the result are lower-cased, repeated ones joined
        with ``\\n``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method or ("GET" if body is None else "POST"), path, body, headers or {})
            res = conn.getresponse()
            out: dict[str, str] = {}
            for name, value in res.getheaders():
                key = name.lower()
                out[key] = f"{out[key]}\n{value}" if key in out else value
            return res.status, out, res.read()
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request(path, **kwargs)

    def fcgi(self) -> FastCGIClient:
        return FastCGIClient(self.address)


@pytest.fixture(scope="session")
def app_dir() -> Iterator[Path]:
    """A short directory (unix socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="smisk-app-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def served_files(app_dir: Path) -> Path:
    files = app_dir / "files"
    files.mkdir()
    (files / "small.txt").write_bytes(b"small file\n")
    with open(files / "big.bin", "wb") as handle:
        handle.write(os.urandom(1 << 20) * 24)  # 24 MiB, bigger than any buffer on the way
    return files


@pytest.fixture(scope="session")
def apps(app_dir: Path) -> Iterator[dict[tuple[str, str], Any]]:
    """Every (mode, kind) app, each on its own unix socket in a server thread."""
    started: dict[tuple[str, str], Any] = {}
    threads: list[ServerThread] = []
    try:
        for mode in MODES:
            for kind, settings in KINDS.items():
                instance = make_app(mode, **settings)
                handler = ApplicationHandler(instance)
                thread = ServerThread(handler, [str(app_dir / f"{mode}-{kind}.sock")])
                thread.__enter__()
                threads.append(thread)
                started[mode, kind] = (instance, handler, thread)
        yield started
    finally:
        for thread in threads:
            thread.__exit__(None, None, None)
        for _, handler, _ in started.values():
            handler.close()


@pytest.fixture(scope="session")
def nginx(
    app_dir: Path, apps: dict[tuple[str, str], Any], served_files: Path
) -> Iterator[AppNginx]:
    backends = {f"{m}-{k}": str(app_dir / f"{m}-{k}.sock") for m, k in apps}
    with AppNginx(app_dir / "nginx", backends, served_files) as server:
        yield server


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _web(nginx: AppNginx, apps: dict[tuple[str, str], Any], mode: str, kind: str) -> Web:
    name = f"{mode}-{kind}"
    return Web(nginx, name, nginx.named[name])


@pytest.fixture
def web(nginx: AppNginx, apps: dict[tuple[str, str], Any], mode: str) -> Web:
    """The main test app of this ``mode``, through nginx."""
    return _web(nginx, apps, mode, "main")


@pytest.fixture
def web_limits(nginx: AppNginx, apps: dict[tuple[str, str], Any], mode: str) -> Web:
    return _web(nginx, apps, mode, "limits")


@pytest.fixture
def web_zero(nginx: AppNginx, apps: dict[tuple[str, str], Any], mode: str) -> Web:
    return _web(nginx, apps, mode, "zero")


@pytest.fixture
def web_fields(nginx: AppNginx, apps: dict[tuple[str, str], Any], mode: str) -> Web:
    return _web(nginx, apps, mode, "fields")


@pytest.fixture
def web_quiet(nginx: AppNginx, apps: dict[tuple[str, str], Any], mode: str) -> Web:
    return _web(nginx, apps, mode, "quiet")


@pytest.fixture
def the_app(apps: dict[tuple[str, str], Any], mode: str) -> Any:
    """The main app instance of this ``mode``."""
    return apps[mode, "main"][0]
