"""``smisk-serve app:App --http ADDR``: the h11 front end answers curl and urllib, GET and POST."""

from __future__ import annotations

import resource
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest

from smisk.runtime.devhttp import HTTPLimits, default_max_connections
from tests.serve.support import ServeProcess, smisk_env, write_app


@pytest.fixture(scope="module", params=["1", "2"], ids=["single", "workers"])
def http_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("devhttp")
    write_app(directory)
    args = ["app:App", "--http", "127.0.0.1:0", "--workers", request.param]
    with ServeProcess(args, directory) as server:
        match = server.wait_for(r"ready: .*serving on 127\.0\.0\.1:(\d+)")
        yield f"http://127.0.0.1:{match.group(1)}"


def fetch(
    url: str, data: bytes | None = None, method: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.status, dict(response.headers), response.read()


def test_urllib_get(http_url: str) -> None:
    status, headers, body = fetch(http_url + "/hello?x=1")
    assert status == 200
    assert headers["Content-Type"] == "text/plain"
    assert body.startswith(b"v1 pid=") and b"path=/hello body=0" in body


def test_urllib_post_streams_a_large_body(http_url: str) -> None:
    payload = b"x" * (3 * 1024 * 1024 + 17)
    status, _, body = fetch(http_url + "/upload", data=payload)
    assert status == 200
    assert f"body={len(payload)}".encode() in body


def test_head_has_no_body(http_url: str) -> None:
    status, _, body = fetch(http_url + "/", method="HEAD")
    assert (status, body) == (200, b"")


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_get_and_post_with_keep_alive(http_url: str, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"y" * 200_000)  # curl sends Expect: 100-continue for this
    result = subprocess.run(
        ["curl", "-sS", "--fail", http_url + "/a", "--next", "-sS", "--fail",
         "--data-binary", f"@{big}", http_url + "/b"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert "path=/a body=0" in first and "path=/b body=200000" in second


# -- hostile clients: raw sockets against a real smisk-serve --http ----------------------------

ENV_APP = """
from smisk.core import Application

class EnvApp(Application):
    def service(self):
        env = self.request.env
        body = self.request.input.read() if self.request.method == "POST" else b""
        names = ("CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_X_FORWARDED_FOR")
        self.response.headers.append("Content-Type: text/plain")
        self.response("".join(f"{name}={env.get(name)}\\n" for name in names) + f"body={body!r}\\n")
"""


def serve_env_app(directory: Path, *options: str, command: list[str] | None = None) -> ServeProcess:
    """smisk-serve EnvApp with ``--http`` on a free port and ``options``."""
    (directory / "envapp.py").write_text(ENV_APP)
    args = ["envapp:EnvApp", "--http", "127.0.0.1:0", *options]
    return ServeProcess(args, directory, command=command)


def http_port(server: ServeProcess) -> int:
    return int(server.wait_for(r"ready: .*serving on 127\.0\.0\.1:(\d+)").group(1))


def connect(port: int) -> socket.socket:
    """A client socket; every read on it is bounded so a missing answer fails, never hangs."""
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (Content-Length or chunked) with h11, as a client."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())  # the bytes went out already: this only sets h11's state
    status, headers, body = 0, {}, b""
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            data = sock.recv(65536)
            assert data or status, "the connection closed before a response"
            client.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return status, headers, body
        else:
            raise AssertionError(f"unexpected {event!r}")


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes (EOF or reset), reading whatever it still sends."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


@pytest.fixture(scope="module")
def env_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with serve_env_app(tmp_path_factory.mktemp("devhttp-env")) as server:
        yield http_port(server)


def test_header_names_with_underscores_do_not_reach_cgi_variables(env_port: int) -> None:
    with connect(env_port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent_Length: 0\r\n"
            b"Content-Type: text/plain\r\nContent_Type: application/x-www-form-urlencoded\r\n"
            b"X-Forwarded-For: 10.0.0.1\r\nX_Forwarded_For: 6.6.6.6\r\n\r\nhello"
        )
        status, _, body = read_response(sock)
    assert status == 200
    assert body.decode().splitlines() == [
        "CONTENT_LENGTH=5", "CONTENT_TYPE=text/plain", "HTTP_X_FORWARDED_FOR=10.0.0.1",
        "body=b'hello'",
    ]  # fmt: skip


def test_allow_from_limits_fastcgi_peers_not_the_http_front_end(tmp_path: Path) -> None:
    # --allow-from names the web servers that may speak FastCGI to smisk; the --http front end
    # talks to the app over a socket pair inside the worker, which is not such a peer.
    with (
        serve_env_app(tmp_path, "--allow-from", "10.9.8.7") as server,
        connect(http_port(server)) as sock,
    ):
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 200
    assert b"body=b''" in body


def test_expect_100_continue_gets_a_full_interim_status_line(env_port: int) -> None:
    with connect(env_port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(1)
            assert chunk, "closed before the interim response"
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        status, _, body = read_response(sock)
    assert status == 200 and b"body=b'hello'" in body


def test_content_length_with_chunked_is_refused_and_the_connection_closed(env_port: int) -> None:
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    with connect(env_port) as sock:
        sock.sendall(
            b"POST /front HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunk + smuggled
        )
        status, headers, _ = read_response(sock)
        assert (status, headers.get("connection")) == (400, "close")
        assert closed_by_server(sock)


def test_a_bad_request_gets_400_and_the_server_goes_on(env_port: int) -> None:
    with connect(env_port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert (status, headers.get("connection")) == (400, "close")
    with connect(env_port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200


def test_slow_and_idle_clients_are_closed(tmp_path: Path) -> None:
    options = ["--params-timeout", "1", "--http-idle-timeout", "1", "--body-timeout", "1"]
    with serve_env_app(tmp_path, *options) as server:
        port = http_port(server)
        with connect(port) as half:
            half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert read_response(half)[0] == 408
            assert closed_by_server(half)
        with connect(port) as stalled:  # the FastCGI side's body timeout covers --http too
            stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            assert read_response(stalled)[0] == 408
            assert closed_by_server(stalled)
        with connect(port) as idle:
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(idle)[0] == 200
            assert closed_by_server(idle)  # keep-alive ends after the idle timeout
        assert "Traceback" not in server.log


BIG_APP = """
from smisk.core import Application

class BigApp(Application):
    def service(self):
        if self.request.url.path == "/big":
            self.response.headers.append("Content-Type: application/octet-stream")
            for _ in range(256):  # 64 MiB, far more than the socket buffers hold
                self.response.write(b"z" * 262144)
        else:
            self.response("small")
"""


def test_a_client_that_stops_reading_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "bigapp.py").write_text(BIG_APP)
    args = ["bigapp:BigApp", "--http", "127.0.0.1:0", "--http-send-timeout", "1"]
    with ServeProcess(args, tmp_path) as server:
        port = http_port(server)
        with connect(port) as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            server.wait_for(r"dropping HTTP connection: the client read nothing for 1 s")
            assert closed_by_server(stalled)
        with connect(port) as fresh:  # the worker goes on serving
            fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(fresh)[:3:2] == (200, b"small")
        assert "Traceback" not in server.log


def test_max_connections_pauses_accepting_until_one_closes(tmp_path: Path) -> None:
    with serve_env_app(tmp_path, "--http-max-connections", "2") as server:
        port = http_port(server)
        held = [connect(port), connect(port)]
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        server.wait_for(r"HTTP max_connections \(2\) reached: accepting paused")
        with connect(port) as waiting:
            waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            held.pop().close()
            assert read_response(waiting)[0] == 200
        server.wait_for(r"accepting HTTP connections again")
        held.pop().close()


def test_out_of_file_descriptors_pauses_accepting_without_a_traceback(tmp_path: Path) -> None:
    limit = 64  # a worker needs about 20 descriptors: a few dozen connections exhaust the rest
    command = [
        sys.executable, "-c",
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}));"
        "from smisk.cli import main; sys.exit(main())",
    ]  # fmt: skip
    with serve_env_app(tmp_path, "--http-max-connections", "1000", command=command) as server:
        port = http_port(server)
        held: list[socket.socket] = []
        try:
            for _ in range(limit):  # bounded: each connection costs the server 3 descriptors
                sock = connect(port)
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
                held.append(sock)
            server.wait_for(r"out of file descriptors .*: accepting HTTP connections paused")
            with connect(port) as waiting:  # queued behind the held ones still in the backlog
                waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                for sock in held:
                    sock.close()
                assert read_response(waiting)[0] == 200
        finally:
            for sock in held:
                sock.close()
        server.wait_for(r"accepting HTTP connections again")
        assert "Traceback" not in server.log


def test_default_max_connections_fits_the_descriptor_limit() -> None:
    assert default_max_connections(resource.RLIM_INFINITY) == 512
    assert default_max_connections(1024) == (1024 - 64) // 3
    assert default_max_connections(16) == 1


def test_limits_from_the_environment() -> None:
    limits = HTTPLimits.from_environ(
        {
            "SMISK_HTTP_MAX_CONNECTIONS": "7",
            "SMISK_HTTP_IDLE_TIMEOUT": "2.5",
            "SMISK_HTTP_SEND_TIMEOUT": "4",
        }
    )
    assert (limits.max_connections, limits.idle_timeout, limits.send_timeout) == (7, 2.5, 4)
    assert HTTPLimits.from_environ({"SMISK_HTTP_MAX_CONNECTIONS": "0"}) == HTTPLimits()
    for variable, text in (
        ("SMISK_HTTP_MAX_CONNECTIONS", "many"),
        ("SMISK_HTTP_IDLE_TIMEOUT", "-1"),
        ("SMISK_HTTP_SEND_TIMEOUT", "soon"),
    ):
        with pytest.raises(ValueError, match=variable):
            HTTPLimits.from_environ({variable: text})


def test_without_h11_the_error_is_one_line(tmp_path: Path) -> None:
    write_app(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.modules['h11'] = None; from smisk.cli import main; sys.exit(main())",
         "app:App", "--http", "127.0.0.1:0"],
        cwd=tmp_path, env=smisk_env(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "smisk-serve: error: --http needs the h11 package: pip install h11"
    ]
