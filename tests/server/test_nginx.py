"""The server behind a real nginx (keep-alive upstream pool and per-request connections), and
behind cgi-fcgi from libfcgi as a second, independent client."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.server.conftest import Address
from tests.support import handlers
from tests.support.handlers import pattern
from tests.support.nginx import Nginx
from tests.support.serving import ServerThread, wait_until

MiB = 1024 * 1024


@pytest.fixture
def front(server: ServerThread, tmp_path: Path) -> Iterator[Nginx]:
    with Nginx(tmp_path / "nginx", [server.addresses[0]]) as nginx:
        yield nginx
    problems = [
        line
        for line in nginx.error_log().splitlines()
        if "[error]" in line or "[crit]" in line or "[alert]" in line
    ]
    assert not problems, "\n".join(problems)


class Http:
    """One keep-alive HTTP/1.1 connection to nginx."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def fetch(self, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.conn.request("POST" if body is not None else "GET", path, body=body)
        response = self.conn.getresponse()
        return response.status, response.read()


@pytest.mark.nginx
def test_1000_sequential_requests_over_a_keepalive_pool(front: Nginx, server: ServerThread) -> None:
    started = time.monotonic()
    with Http(front.port) as http_client:
        for i in range(1000):
            assert http_client.fetch(f"/echo?{i}", body=str(i).encode()) == (200, str(i).encode())
    elapsed = time.monotonic() - started
    print(f"1000 sequential requests through nginx (keep-alive upstream): {elapsed:.2f}s")
    assert server.server.stats.accepted_connections == 1  # nginx reused one pooled connection
    assert elapsed < 30


@pytest.mark.nginx
def test_sequential_requests_without_keepalive(front: Nginx, server: ServerThread) -> None:
    with Http(front.port) as http_client:
        for i in range(200):
            assert http_client.fetch(f"/nokeep/hello?{i}") == (200, b"Hello World!")
    assert server.server.stats.accepted_connections == 200  # one connection per request
    wait_until(lambda: not server.server.connections, what="every connection closed")


@pytest.mark.nginx
@pytest.mark.parametrize("prefix", ["", "/nokeep"])
def test_200_concurrent_requests(front: Nginx, server: ServerThread, prefix: str) -> None:
    """All 200 are in flight at once: each waits at a barrier until the 200th arrives."""
    count = 200

    def one(i: int) -> tuple[int, bytes]:
        with Http(front.port) as http_client:
            return http_client.fetch(f"{prefix}/barrier?n={count}&key=nginx{prefix}&i={i}")

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count), timeout=60))
    assert all(result == (200, b"1") for result in results)  # nginx always uses request id 1
    assert time.monotonic() - started < 30
    assert server.server.stats.accepted_connections >= count


@pytest.mark.nginx
@pytest.mark.parametrize("prefix", ["", "/nokeep"])
def test_10_mib_post_echoed(front: Nginx, prefix: str) -> None:
    body = hashlib.sha256(prefix.encode()).digest() * (10 * MiB // 32)
    with Http(front.port) as http_client:
        assert http_client.fetch(f"{prefix}/echo", body=body) == (200, body)
        status, digest = http_client.fetch(f"{prefix}/sha256", body=body)
        assert (status, digest) == (200, f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode())


@pytest.mark.nginx
@pytest.mark.parametrize("prefix", ["", "/nokeep"])
def test_10_mib_response(front: Nginx, prefix: str) -> None:
    size = 10 * MiB
    with Http(front.port) as http_client:
        for query in (f"n={size}&chunk=65536", f"n={size}&chunk=100000", f"n={size}"):
            status, body = http_client.fetch(f"{prefix}/big?{query}")
            assert status == 200 and len(body) == size
            assert body == pattern(size)


@pytest.mark.nginx
def test_handler_error_gives_500_then_next_request_works(front: Nginx) -> None:
    with Http(front.port) as http_client:
        for _ in range(3):
            status, body = http_client.fetch("/fail")
            assert status == 500 and b"Internal Server Error" in body
            assert http_client.fetch("/hello") == (200, b"Hello World!")


@pytest.mark.nginx
def test_params_from_nginx(front: Nginx) -> None:
    with Http(front.port) as http_client:
        http_client.conn.request("GET", "/params?a=1", headers={"X-Test": "yes"})
        response = http_client.conn.getresponse()
        assert response.status == 200
        data = json.loads(response.read())
    params = dict(data["params"])
    assert data["role"] == 1 and data["keep_conn"] is True
    assert params["REQUEST_URI"] == "/params?a=1"
    assert params["QUERY_STRING"] == "a=1"
    assert params["HTTP_X_TEST"] == "yes"


@pytest.mark.nginx
def test_client_going_away_reaches_the_handler(front: Nginx, server: ServerThread) -> None:
    """nginx closes the upstream connection when its client leaves; the handler is cancelled
    and the server keeps serving."""
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
        sock.sendall(b"GET /wait-abort HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"waiting" in sock.recv(65536) or b"waiting" in sock.recv(65536)
    wait_until(lambda: handlers.EVENTS == ["aborted 1"], what="handler cancelled")
    with Http(front.port) as http_client:
        assert http_client.fetch("/hello") == (200, b"Hello World!")


# -- cgi-fcgi (libfcgi) --------------------------------------------------------------------------


def cgi_fcgi(
    address: Address, env: dict[str, str], body: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    tool = shutil.which("cgi-fcgi")
    assert tool is not None, "cgi-fcgi (libfcgi-bin) is not installed"
    target = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
    cgi_env = {"PATH": os.environ.get("PATH", ""), "GATEWAY_INTERFACE": "CGI/1.1"} | env
    return subprocess.run(
        [tool, "-bind", "-connect", target],
        input=body,
        env=cgi_env,
        capture_output=True,
        timeout=30,
        check=True,
    )


def test_cgi_fcgi_get(address: Address) -> None:
    result = cgi_fcgi(address, {"REQUEST_METHOD": "GET", "REQUEST_URI": "/hello"})
    assert result.stdout.endswith(b"\r\n\r\nHello World!")


def test_cgi_fcgi_post_and_large_response(address: Address) -> None:
    body = pattern(3 * MiB)[::-1]
    env = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/echo", "CONTENT_LENGTH": str(len(body))}
    assert cgi_fcgi(address, env, body).stdout.partition(b"\r\n\r\n")[2] == body
    result = cgi_fcgi(address, {"REQUEST_METHOD": "GET", "REQUEST_URI": f"/big?n={2 * MiB}"})
    assert result.stdout.partition(b"\r\n\r\n")[2] == pattern(2 * MiB)


def test_cgi_fcgi_stderr(address: Address) -> None:
    result = cgi_fcgi(address, {"REQUEST_METHOD": "GET", "REQUEST_URI": "/stderr"})
    assert result.stdout.endswith(b"ok")
    assert result.stderr == b"a log line\n"
