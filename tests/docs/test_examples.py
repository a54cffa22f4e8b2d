"""Every program in examples/ runs as its docstring says and answers as documented: through a
real nginx (uploads, send_file, streaming, sessions) or the test FastCGI client."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.docs.support import (
    ROOT,
    free_port,
    http,
    python_env,
    recipe,
    server,
    smisk_serve,
    wait_http,
    wait_socket,
)
from tests.serve.support import ServeProcess
from tests.support.fcgi_client import FastCGIClient
from tests.support.nginx import FASTCGI_PARAMS, NGINX
from tests.support.redis import RedisServer

EXAMPLES = ["uploads:App", "send_file:App", "async_handlers:App", "sessions:FileApp"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("examples")


@pytest.fixture(scope="module")
def files(workdir: Path) -> Path:
    directory = workdir / "files"
    directory.mkdir()
    (directory / "report.bin").write_bytes(os.urandom(300_000))
    return directory


@pytest.fixture(scope="module")
def backends(workdir: Path, files: Path) -> Iterator[dict[str, str]]:
    """One smisk-serve per example app, each on its own unix socket, started side by side."""
    env = {"SMISK_FILES": str(files), "SMISK_SESSION_DIR": str(workdir)}
    socks = {spec: str(workdir / f"{spec.split(':')[0]}.sock") for spec in EXAMPLES}
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                ServeProcess(
                    [f"examples.{spec}", "--bind", f"unix:{sock}"], ROOT, env=python_env(**env)
                )
            )
            for spec, sock in socks.items()
        ]
        for proc in procs:
            proc.wait_for("ready: ")
        yield socks


@pytest.fixture(scope="module")
def nginx(workdir: Path, files: Path, backends: dict[str, str]) -> Iterator[str]:
    port = free_port()
    routes = {
        "/uploads/": "uploads:App",
        "/files/": "send_file:App",
        "/async/": "async_handlers:App",
        "/session/": "sessions:FileApp",
    }
    locations = "".join(
        f"location {prefix} {{ include {FASTCGI_PARAMS}; fastcgi_pass unix:{backends[spec]}; }}\n"
        for prefix, spec in routes.items()
    )
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/body;
  fastcgi_temp_path {workdir}/fastcgi;
  client_max_body_size 100m;
  server {{
    listen 127.0.0.1:{port};
    {locations}
    location /protected/ {{ internal; alias {files}/; }}
  }}
}}
""")
    with server([NGINX, "-p", str(workdir), "-c", str(conf)]) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/", proc)
        yield url


def fcgi(address: str | tuple[str, int], path: str, **params: str) -> tuple[dict[str, str], bytes]:
    script, _, query = path.partition("?")
    env = {"REQUEST_URI": path, "SCRIPT_NAME": script, "QUERY_STRING": query} | params
    with FastCGIClient(address, timeout=30) as client:
        return client.request(params=env).split()


# -- hello, classic ----------------------------------------------------------------------------


def test_hello(workdir: Path) -> None:
    sock = str(workdir / "hello.sock")
    with smisk_serve("examples.hello:App", "--bind", f"unix:{sock}"):
        headers, body = fcgi(sock, "/")
    assert body == b"Hello World!\n" and headers["content-type"] == "text/plain"


def test_classic_app_runs_with_bind_and_run(workdir: Path) -> None:
    sock = str(workdir / "classic.sock")
    argv = [sys.executable, "examples/classic.py", sock]
    with server(argv, env=python_env()) as proc:
        wait_socket(sock)
        headers, body = fcgi(sock, "/hi?name=<Bob>")
        redirect_headers, _ = fcgi(sock, "/redirect")
        assert proc.poll() is None
    assert b"<h1>Hello &lt;Bob&gt;!</h1>" in body
    assert b"method GET, path /hi" in body and b"encoded: %3CBob%3E" in body
    assert headers["set-cookie"].startswith("last_name=%3CBob%3E")
    assert redirect_headers["status"].startswith("302") and redirect_headers["location"] == "/"


# -- async handlers ----------------------------------------------------------------------------


def test_async_handlers_gather_stream_and_echo(nginx: str) -> None:
    status, _, body = http(nginx + "/async/")
    assert status == 200 and body == b"AB\n"
    status, headers, body = http(nginx + "/async/stream")
    assert body == b"".join(f"line {n}\n".encode() for n in range(5))
    assert "x-accel-buffering" not in headers  # nginx consumed it
    payload = os.urandom(200_000)
    status, _, body = http(nginx + "/async/echo", data=payload)
    assert status == 200 and body == payload


# -- uploads -----------------------------------------------------------------------------------


def multipart(fields: dict[str, str], name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"'
        f"\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_uploads_through_nginx(nginx: str) -> None:
    status, _, form = http(nginx + "/uploads/")
    assert status == 200 and b'enctype="multipart/form-data"' in form
    data = os.urandom(3_000_000)
    body, content_type = multipart({"note": "<hi>"}, "file", "photo.jpg", data)
    status, _, answer = http(nginx + "/uploads/", data=body, headers={"Content-Type": content_type})
    assert status == 200, answer
    text = answer.decode()
    assert "note: &lt;hi&gt;" in text
    assert f"photo.jpg: {len(data)} bytes, application/octet-stream, sha256 " in text
    assert hashlib.sha256(data).hexdigest() in text


def test_uploads_over_the_limit_get_413(nginx: str) -> None:
    body, content_type = multipart({}, "file", "big.bin", bytes(65 * 1024 * 1024))
    status, _, _ = http(nginx + "/uploads/", data=body, headers={"Content-Type": content_type})
    assert status == 413


# -- send_file ---------------------------------------------------------------------------------


def test_send_file_through_nginx_x_accel_redirect(nginx: str, files: Path) -> None:
    status, headers, body = http(nginx + "/files/report.bin")
    assert status == 200 and body == (files / "report.bin").read_bytes()
    assert "x-accel-redirect" not in headers
    assert http(nginx + "/files/missing.bin")[0] == 404
    assert http(nginx + "/protected/report.bin")[0] == 404  # internal only


def test_send_file_headers_for_lighttpd_and_streaming(
    backends: dict[str, str], files: Path
) -> None:
    sock = backends["send_file:App"]
    headers, body = fcgi(sock, "/files/report.bin", SERVER_SOFTWARE="lighttpd/1.4.69")
    assert headers["x-lighttpd-send-file"] == str(files / "report.bin") and body == b""
    headers, body = fcgi(sock, "/files/report.bin", SERVER_SOFTWARE="")
    assert body == (files / "report.bin").read_bytes()
    assert headers["content-length"] == str(len(body))


# -- sessions ----------------------------------------------------------------------------------


def _visits(url: str, cookie: str | None) -> tuple[str, str | None]:
    status, headers, body = http(url, headers={"Cookie": cookie} if cookie else {})
    assert status == 200, body
    set_cookie = headers.get("set-cookie")
    return body.decode().strip(), set_cookie.split(";")[0] if set_cookie else cookie


def test_file_sessions_count_visits_and_log_out(nginx: str) -> None:
    text, cookie = _visits(nginx + "/session/", None)
    assert text == "visit #1" and cookie and cookie.startswith("SID=")
    text, same = _visits(nginx + "/session/", cookie)
    assert text == "visit #2" and same == cookie
    status, headers, _ = http(nginx + "/session/logout", headers={"Cookie": cookie})
    assert status == 200 and "Max-Age=0" in headers["set-cookie"]
    text, fresh = _visits(nginx + "/session/", cookie)
    assert text == "visit #1" and fresh != cookie


def test_redis_sessions(workdir: Path) -> None:
    sock = str(workdir / "redis-app.sock")
    with (
        RedisServer() as redis,
        smisk_serve(
            "examples.sessions:RedisApp", "--bind", f"unix:{sock}", SMISK_REDIS_URL=redis.url
        ),
    ):
        headers, body = fcgi(sock, "/")
        cookie = headers["set-cookie"].split(";")[0]
        assert body == b"visit #1\n"
        _, body = fcgi(sock, "/", HTTP_COOKIE=cookie)
        assert body == b"visit #2\n"
        headers, body = fcgi(sock, "/logout", HTTP_COOKIE=cookie)
        assert body == b"bye\n" and "Max-Age=0" in headers["set-cookie"]


# -- embedding, WSGI, ASGI ---------------------------------------------------------------------


def _ready_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY "), line
    return line.split(" ", 1)[1].strip()


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("wsgi_app.py", "WSGI POST /p/q?x=1 body=5\n"),
        ("asgi_app.py", "ASGI POST /p/q body=5 started=True\n"),
    ],
)
def test_wsgi_and_asgi_examples(workdir: Path, script: str, expected: str) -> None:
    sock = str(workdir / f"{script}.sock")
    proc = subprocess.Popen(
        [sys.executable, f"examples/{script}", f"unix:{sock}"],
        cwd=ROOT,
        env=python_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert _ready_line(proc).endswith(sock)
        with FastCGIClient(sock) as client:
            params = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/p/q?x=1", "QUERY_STRING": "x=1"}
            params |= {"SCRIPT_NAME": "/p/q", "CONTENT_LENGTH": "5"}
            _, body = client.request(params=params, body=b"hello").split()
        assert body.decode() == expected
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()


def test_embedded_example_serves_next_to_its_host_tasks() -> None:
    proc = subprocess.Popen(
        [sys.executable, "examples/embedded.py"],
        cwd=ROOT,
        env=python_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        host, _, port = _ready_line(proc).rpartition(":")
        _, body = fcgi((host, int(port)), "/")
        assert body.startswith(b"hello from an embedded server; beats=")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stdout is not None and proc.stdout.read().strip() == "STOPPED"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()


def test_quickstart_app_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(recipe("quickstart.md", "app.py"))
    sock = str(tmp_path / "quick.sock")
    with smisk_serve("app:App", "--bind", f"unix:{sock}", cwd=tmp_path):
        headers, body = fcgi(sock, "/?name=smisk")
    assert body == b"Hello smisk!\n" and headers["content-type"].startswith("text/plain")
