"""Front-end routing matrix: real web servers x interfaces x paths, against each framework's own
test client.

Rules: the matrix is generated from ``ROWS`` alone (one line per web server configuration, most
of them a recipe of docs/deploy/ as printed there); each (row, interface) starts its own web
server and smisk-serve once and sends every path through it over real HTTP. A cell passes when
the status and the framework's view, path, root path and query equal what the framework's test
client reports for the same URL (Flask's ``test_client()``; for Starlette the scope its
TestClient would build, called in-process; for the classic API the URL itself:
``request.url.path`` is always the whole path). Debian's snippets are used unmodified, from
/etc/nginx. Every mismatch of a cell is listed at once, with the params smisk received.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.docs.support import (
    ROOT,
    apache_conf,
    binary,
    caddy_command,
    free_port,
    http,
    lighttpd_conf,
    nginx_conf,
    python_env,
    recipe,
    server,
    shared_dir,
    substitute,
    wait_http,
)
from tests.frontends.apps import Report, classic_report, flask_app, starlette_app
from tests.serve.support import ServeProcess

# The URLs every cell requests, under the row's mount prefix.
PATHS = ("/", "/a/b", "/a%2Fb", "/caf%C3%A9", "/x?y=1&y=2", "/t/")
APPS = {
    "classic": "tests.frontends.apps:Classic",
    "flask": "tests.frontends.apps:flask_app",
    "starlette": "tests.frontends.apps:starlette_app",
}
MOUNT = ("--mount", "/app")  # for front ends that cannot say where the app is mounted


@dataclass(frozen=True)
class Row:
    """One web server configuration: ``config`` is its site snippet with @PLACEHOLDERS@.

    ``transport`` is how smisk listens: ``unix``, ``tcp``, or ``spawned`` (the web server starts
    smisk itself, ``@COMMAND@``); ``mount`` is where the app lives in the URL space.
    """

    name: str
    server: str
    snippet: str
    config: str
    mount: str = ""
    smisk_args: tuple[str, ...] = ()
    transport: str = "unix"


# -- site snippets -----------------------------------------------------------------------------
# Most rows are the recipes of docs/deploy/ as written there (what the reader copies); a variant
# is a recipe with one change. Only addresses and paths become @PLACEHOLDERS@.

RECIPE_PLACEHOLDERS = {
    "/run/smisk/app.sock": "@SOCKET@",
    "/run/lighttpd/smisk.sock": "@SOCKET@",
    "127.0.0.1:5000": "@TCP@",
    "listen 80;": "listen 127.0.0.1:@PORT@;",
    "example.org {": "http://127.0.0.1:@PORT@ {",
    "/srv/app/public": "@DOCROOT@",
    "/srv/app": "@ROOT@",
    "/usr/local/bin/smisk-serve app:App --workers 2": "@COMMAND@",
}
GENERIC = {"    ProxyPass": "    ProxyFCGIBackendType GENERIC\n    ProxyPass"}


def doc(page: str, name: str, changes: dict[str, str] | None = None) -> str:
    """Recipe ``name`` of docs/deploy/PAGE.md with placeholders, then ``changes`` (a variant)."""
    text = recipe(f"deploy/{page}.md", name)
    for old, new in RECIPE_PLACEHOLDERS.items():
        text = text.replace(old, new)
    return substitute(text, changes) if changes else text


def fill(template: str, **values: str) -> str:
    """``template`` with each ``@NAME@`` replaced by ``values[NAME]``."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    return template


# -- the table ---------------------------------------------------------------------------------

ROWS = [
    Row("nginx-fastcgi_params", "nginx", "fastcgi_params", doc("nginx", "nginx-unix")),
    Row("nginx-fastcgi_params-tcp", "nginx", "fastcgi_params", doc("nginx", "nginx-tcp"), transport="tcp"),
    Row("nginx-fastcgi.conf", "nginx", "fastcgi.conf", doc("nginx", "nginx-unix", {"include fastcgi_params;": "include fastcgi.conf;"})),
    Row("nginx-fastcgi_params-app", "nginx", "fastcgi_params", doc("nginx", "nginx-prefix"), "/app", MOUNT),
    Row("nginx-split_path_info-app", "nginx", "fastcgi_split_path_info", doc("nginx", "nginx-split-path-info"), "/app"),
    Row("nginx-fastcgi-php", "nginx", "snippets/fastcgi-php.conf", doc("nginx", "nginx-fastcgi-php")),
    Row("nginx-fastcgi-php-app", "nginx", "snippets/fastcgi-php.conf", doc("nginx", "nginx-fastcgi-php", {"location / {": "location /app/ {", "/index.php": "/app/index.php"}), "/app", MOUNT),
    Row("apache-unix", "apache", "ProxyPass unix, FPM", doc("apache", "apache-unix")),
    Row("apache-unix-generic", "apache", "ProxyPass unix, GENERIC", doc("apache", "apache-unix", GENERIC)),
    Row("apache-tcp", "apache", "ProxyPass fcgi://, FPM", doc("apache", "apache-tcp"), transport="tcp"),
    Row("apache-tcp-generic", "apache", "ProxyPass fcgi://, GENERIC", doc("apache", "apache-tcp", GENERIC), transport="tcp"),
    Row("apache-prefix", "apache", "ProxyPass /app/ unix, FPM", doc("apache", "apache-prefix"), "/app", MOUNT),
    Row("apache-tcp-generic-app", "apache", "ProxyPass /app/ fcgi://, GENERIC", doc("apache", "apache-tcp", {**GENERIC, '"/" "fcgi://@TCP@/"': '"/app/" "fcgi://@TCP@/app/"'}), "/app", MOUNT, "tcp"),
    # Without fix-root-scriptname lighttpd 1.4.69's "/" sends the first path segment as
    # SCRIPT_NAME and the rest as PATH_INFO: GET /a/b gives SCRIPT_NAME=/a PATH_INFO=/b
    # REQUEST_URI=/a/b SCRIPT_FILENAME=$docroot/a PATH_TRANSLATED=$docroot/b (GET /t/: /t and /,
    # GET /: SCRIPT_NAME=/ and no PATH_INFO). No rule can tell that from a real mount point at
    # /a, so the recipes set it (docs/deploy/lighttpd.md).
    Row("lighttpd-socket", "lighttpd", "socket, fix-root-scriptname", doc("lighttpd", "lighttpd-socket")),
    Row("lighttpd-bin-path", "lighttpd", "bin-path, fix-root-scriptname", doc("lighttpd", "lighttpd-bin-path"), transport="spawned"),
    Row("lighttpd-prefix", "lighttpd", "socket, prefix /app", doc("lighttpd", "lighttpd-prefix"), "/app"),
    Row("lighttpd-no-fix-root-mount-root", "lighttpd", "socket, no fix-root-scriptname, --mount /", doc("lighttpd", "lighttpd-socket", {'        "fix-root-scriptname" => "enable",   # SCRIPT_NAME "" and the whole path as PATH_INFO\n': ""}), smisk_args=("--mount", "/")),
    Row("caddy-split-empty", "caddy", 'transport fastcgi, split ""', doc("caddy", "caddyfile")),
    Row("caddy-split-unset", "caddy", "transport fastcgi", doc("caddy", "caddyfile", {'\t\t\tsplit ""\n': ""})),
    Row("caddy-prefix", "caddy", "transport fastcgi, split /app", doc("caddy", "caddy-prefix"), "/app"),
]  # fmt: skip


# -- starting a cell ---------------------------------------------------------------------------


NGINX_SERVER = """upstream smisk {
    server @BACKEND@;
    keepalive 32;
}
server {
    listen 127.0.0.1:@PORT@;
@LOCATIONS@
}"""


def site(row: Row) -> str:
    """The row's whole site: nginx locations go into a server whose ``smisk`` upstream keeps a
    pool, as in the unix socket recipe; everything else is whole already."""
    if row.server == "nginx" and "server {" not in row.config:
        return fill(NGINX_SERVER, LOCATIONS=row.config)
    return row.config


def nginx(workdir: Path, port: int, config: str) -> tuple[list[str], dict[str, str]]:
    """nginx on ``config``. Its configuration directory mirrors /etc/nginx (links to Debian's
    snippets), so relative includes find them, unmodified; the docroot holds the empty scripts a
    front-controller recipe needs."""
    for name in ("fastcgi_params", "fastcgi.conf", "snippets"):
        (workdir / name).symlink_to(f"/etc/nginx/{name}")
    for script in ("www/index.php", "www/app/index.php"):
        (workdir / script).parent.mkdir(parents=True, exist_ok=True)
        (workdir / script).touch()
    conf = nginx_conf(workdir, config)
    return [binary("nginx"), "-p", str(workdir), "-c", str(conf)], python_env()


def apache2(workdir: Path, port: int, config: str) -> tuple[list[str], dict[str, str]]:
    """Apache httpd on ``config`` (a ``<VirtualHost>``) in the foreground."""
    conf = apache_conf(workdir, port, config)
    return [binary("apache2"), "-f", str(conf), "-DFOREGROUND"], python_env()


def lighttpd(workdir: Path, port: int, config: str) -> tuple[list[str], dict[str, str]]:
    """lighttpd on ``config``; it keeps root only when it has to start smisk itself."""
    username = "" if "bin-path" in config else "www-data"
    conf = lighttpd_conf(workdir, port, config, username=username)
    return [binary("lighttpd"), "-D", "-f", str(conf)], python_env()


def caddy(workdir: Path, port: int, config: str) -> tuple[list[str], dict[str, str]]:
    """Caddy on ``config`` (a site block)."""
    return caddy_command(workdir, config)


FRONT_ENDS: dict[str, Callable[[Path, int, str], tuple[list[str], dict[str, str]]]] = {
    "nginx": nginx,
    "apache": apache2,
    "lighttpd": lighttpd,
    "caddy": caddy,
}


def smisk_argv(row: Row, interface: str, sock: str, tcp: str) -> list[str]:
    """smisk-serve's arguments for ``row`` (without ``--bind`` when the web server spawns it)."""
    argv = [APPS[interface], *row.smisk_args]
    if row.transport == "unix":
        argv += ["--bind", f"unix:{sock}", "--socket-owner", ":www-data", "--socket-mode", "660"]
    elif row.transport == "tcp":
        argv += ["--bind", tcp]
    return argv


@dataclass(frozen=True)
class Cell:
    """A running (row, interface) pair: the web server's base URL and smisk's log so far."""

    url: str
    log: Callable[[], str]


def start_cell(row: Row, interface: str, stack: ExitStack) -> Cell:
    """Start smisk and the web server of one cell."""
    workdir = shared_dir("smisk-matrix-")
    stack.callback(shutil.rmtree, workdir, True)
    sock, tcp, port = str(workdir / "app.sock"), f"127.0.0.1:{free_port()}", free_port()
    argv = smisk_argv(row, interface, sock, tcp)
    log = (lambda: "(started by the web server)") if row.transport == "spawned" else None
    if log is None:
        smisk = stack.enter_context(ServeProcess(argv, ROOT, env=python_env()))
        smisk.wait_for("ready: ")
        log = lambda: smisk.log  # noqa: E731 - read when a cell fails
    backend = f"unix:{sock}" if row.transport == "unix" else tcp
    command = " ".join([sys.executable, "-m", "smisk", *argv])
    config = fill(
        site(row),
        BACKEND=backend,
        DOCROOT=str(workdir / "www"),
        SOCKET=sock,
        TCP=tcp,
        PORT=str(port),
        COMMAND=command,
        ROOT=str(ROOT),
    )
    command_line, env = FRONT_ENDS[row.server](workdir, port, config)
    proc = stack.enter_context(server(command_line, env=env, cwd=workdir))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + row.mount + "/", proc)
    return Cell(url, log)


@pytest.fixture(scope="module", params=ROWS, ids=[row.name for row in ROWS])
def cells(request: pytest.FixtureRequest) -> Iterator[tuple[Row, dict[str, Cell]]]:
    """The row's three cells (one per interface), started in parallel."""
    row: Row = request.param
    with ExitStack() as stack, ThreadPoolExecutor(len(APPS)) as pool:
        futures = {i: pool.submit(start_cell, row, i, stack) for i in APPS}
        yield row, {interface: future.result() for interface, future in futures.items()}


# -- references --------------------------------------------------------------------------------


def classic_reference(mount: str, path: str) -> tuple[int, Report]:
    """The classic API's answer: the decoded whole path and the query, as the client sent them."""
    parts = urlsplit(mount + path)
    answer = classic_report(unquote(parts.path), parts.query)
    return (404 if answer["view"] == "not-found" else 200), answer


def flask_reference(mount: str, path: str) -> tuple[int, Report]:
    """Flask's test client for PATH on an app mounted at MOUNT (its SCRIPT_NAME)."""
    response = flask_app.test_client().get(path, base_url=f"http://localhost{mount}")
    return response.status_code, compared(response.get_json())


def starlette_scope(mount: str, path: str) -> dict[str, Any]:
    """The scope Starlette's TestClient(app, root_path=MOUNT) builds for a GET of MOUNT+PATH."""
    parts = urlsplit(mount + path)
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(parts.path),
        "raw_path": parts.path.encode("ascii"),
        "root_path": mount,
        "query_string": parts.query.encode("ascii"),
        "headers": [(b"host", b"testserver")],
        "client": ("testclient", 123),
        "server": ("testserver", 80),
    }


def starlette_reference(mount: str, path: str) -> tuple[int, Report]:
    """Starlette's answer to the test client's scope, called in-process."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(starlette_app(starlette_scope(mount, path), receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), compared(json.loads(body))


REFERENCES = {
    "classic": classic_reference,
    "flask": flask_reference,
    "starlette": starlette_reference,
}


def compared(answer: Report) -> Report:
    """The keys of an answer the matrix compares (``params`` is there for reading failures)."""
    return {key: value for key, value in answer.items() if key != "params"}


def through(url: str) -> tuple[int, Report, object]:
    """The status, the compared answer and the params smisk saw, for one real request."""
    status, _, body = http(url)
    try:
        answer = json.loads(body)
    except ValueError:  # not the app's answer (the web server's own error page)
        return status, {"body": body[:200].decode("latin-1")}, None
    return status, compared(answer), answer.get("params")


@pytest.mark.parametrize("interface", list(APPS))
def test_every_path_routes_as_the_framework_test_client_says(
    cells: tuple[Row, dict[str, Cell]], interface: str
) -> None:
    row, cell = cells[0], cells[1][interface]
    mismatches = []
    for path in PATHS:
        expected = REFERENCES[interface](row.mount, path)
        status, answer, params = through(cell.url + row.mount + path)
        if (status, answer) != expected:
            mismatches.append(
                f"{row.mount}{path}: got {status} {answer}\n"
                f"{' ' * len(row.mount + path)}  expected {expected[0]} {expected[1]}\n"
                f"{' ' * len(row.mount + path)}  params {params}"
            )
    assert not mismatches, (
        f"{row.name} x {interface} ({row.snippet}):\n"
        + "\n".join(mismatches)
        + f"\nsmisk's log:\n{cell.log()[-2000:]}"
    )


def test_each_row_is_named_in_its_deploy_page() -> None:
    for row in ROWS:  # the page says which configuration was tested, by the row's name
        page = ROOT / "docs" / "deploy" / f"{row.server}.md"
        assert f"`{row.name}`" in page.read_text(), f"{page} does not name {row.name}"


def test_the_table_names_unique_rows_and_known_servers() -> None:
    assert len({row.name for row in ROWS}) == len(ROWS)
    assert {row.server for row in ROWS} == set(FRONT_ENDS)
    assert all(row.transport in ("unix", "tcp", "spawned") for row in ROWS)
