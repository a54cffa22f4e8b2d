"""Helpers for the documentation tests: recipe blocks read from docs/, smisk processes, HTTP.

A recipe block in a Markdown page is the fenced code block right after a marker line
``<!-- recipe: NAME -->``. Tests run that text, with only ports and paths substituted, against the
real server binary; a recipe that is edited into something broken fails its test.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.serve.support import ServeProcess, smisk_env

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_MARKER = re.compile(r"<!-- recipe: ([\w.-]+) -->\s*\n(`{3,})[^\n]*\n(.*?)\n\2", re.DOTALL)


def recipes(page: str) -> dict[str, str]:
    """Every recipe block of ``docs/PAGE`` by name."""
    text = (DOCS / page).read_text()
    return {name: body + "\n" for name, _, body in _MARKER.findall(text)}


def recipe(page: str, name: str) -> str:
    """The recipe block ``name`` of ``docs/PAGE``."""
    found = recipes(page)
    assert name in found, f"no recipe {name!r} in docs/{page} (found {sorted(found)})"
    return found[name]


def substitute(text: str, replacements: dict[str, str]) -> str:
    """Replace each key (a literal the recipe must contain) by its value."""
    for old, new in replacements.items():
        assert old in text, f"the recipe no longer contains {old!r}:\n{text}"
        text = text.replace(old, new)
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shared_dir(prefix: str) -> Path:
    """A short directory every user can enter (web servers' workers run as www-data)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns status, headers (lower-case names) and body (errors too)."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), error.read()


def _lower(headers: object) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}  # type: ignore[attr-defined]


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20) -> None:
    """Wait until ``url`` answers at all (the server is up); fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            http(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def wait_socket(address: str | tuple[str, int], timeout: float = 20) -> None:
    """Wait until something accepts connections on ``address``."""
    deadline = time.monotonic() + timeout
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    while True:
        with socket.socket(family) as sock:
            try:
                sock.connect(address)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.02)


@contextmanager
def smisk_serve(*args: str, cwd: Path = ROOT, **env: str) -> Iterator[ServeProcess]:
    """``python -m smisk ARGS`` until its "ready:" log line; stopped with SIGTERM afterwards."""
    with ServeProcess(list(args), cwd, env=smisk_env(**env)) as proc:
        proc.wait_for("ready: ")
        yield proc


@contextmanager
def server(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """A web server in the foreground; terminated (by its pid) and waited for afterwards."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env or smisk_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def smisk_serve_command() -> list[str]:
    """How to run ``smisk-serve`` from this checkout with this interpreter."""
    return [sys.executable, "-m", "smisk"]


def python_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this checkout importable, SMISK_* codec switches."""
    env = smisk_env(**extra)
    env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    return env


# -- web servers -------------------------------------------------------------------------------
# Each *_conf helper wraps a site snippet in the smallest complete configuration that runs in the
# foreground from a private directory; the snippet itself is used as given.

APACHE_MODULES = "/usr/lib/apache2/modules"


def binary(name: str) -> str:
    """The path of a web server program; missing is an error (install-system-deps installs it)."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    assert found, f"{name} is not installed (scripts/install-system-deps installs it)"
    return found


def nginx_conf(workdir: Path, site: str) -> Path:
    """``nginx.conf`` in ``workdir`` with ``site`` inside ``http { }`` (workers as www-data)."""
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
user www-data;
worker_processes 2;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/body;
  fastcgi_temp_path {workdir}/fastcgi;
  proxy_temp_path {workdir}/proxy;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
{site}
}}
""")
    return conf


def apache_conf(workdir: Path, port: int, site: str) -> Path:
    """``httpd.conf`` for ``site`` (a ``<VirtualHost *:80>``), listening on 127.0.0.1:PORT."""
    site = substitute(site, {"<VirtualHost *:80>": f"<VirtualHost *:{port}>"})
    modules = ("mpm_event", "authz_core", "proxy", "proxy_fcgi")
    loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in modules)
    conf = workdir / "httpd.conf"
    conf.write_text(f"""
Listen 127.0.0.1:{port}
ServerName localhost
PidFile {workdir}/httpd.pid
ErrorLog {workdir}/apache-error.log
DefaultRuntimeDir {workdir}
Mutex file:{workdir} default
{loads}
User www-data
Group www-data
{site}
""")
    return conf


def lighttpd_conf(workdir: Path, port: int, snippet: str, username: str = "") -> Path:
    """``lighttpd.conf`` with ``snippet``, its docroot ``workdir``; ``username`` drops privileges."""
    conf = workdir / "lighttpd.conf"
    log = workdir / "lighttpd-error.log"
    log.touch()
    uploads = workdir / "lighttpd-uploads"  # request bodies are buffered there
    uploads.mkdir()
    if username:  # lighttpd opens these after dropping privileges
        shutil.chown(log, username, username)
        shutil.chown(uploads, username, username)
    user = f'server.username = "{username}"\nserver.groupname = "{username}"' if username else ""
    conf.write_text(f"""
server.document-root = "{workdir}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{workdir}/lighttpd-error.log"
server.pid-file = "{workdir}/lighttpd.pid"
server.upload-dirs = ( "{uploads}" )
{user}
{snippet}
""")
    return conf


def caddy_command(workdir: Path, site: str) -> tuple[list[str], dict[str, str]]:
    """How to run Caddy on the Caddyfile ``site`` (plus ``admin off``): argv and environment.

    Caddy keeps its state under HOME/XDG directories: they point into ``workdir``.
    """
    caddyfile = workdir / "Caddyfile"
    caddyfile.write_text("{\n\tadmin off\n}\n\n" + site)
    env = python_env(HOME=str(workdir), XDG_DATA_HOME=str(workdir), XDG_CONFIG_HOME=str(workdir))
    argv = [binary("caddy"), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
    return argv, env
