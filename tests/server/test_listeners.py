"""Listeners: TCP over IPv4 and IPv6, unix sockets and their files, the socket inherited on fd 0."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import stat
from pathlib import Path

import pytest

from smisk.server import Address, bind_listener, inherited_listener, parse_address
from tests.support.fcgi_client import FastCGIClient
from tests.support.handlers import router
from tests.support.serving import ServerThread, server_process, tcp_address

HELLO = {"REQUEST_URI": "/hello"}


def hello_via(address: str | tuple[str, int]) -> bytes:
    with FastCGIClient(address, timeout=10) as client:
        return client.request(params=HELLO).split()[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":5000", Address("tcp", "", 5000)),
        ("*:5000", Address("tcp", "", 5000)),
        ("127.0.0.1:5000", Address("tcp", "127.0.0.1", 5000)),
        ("[::1]:5000", Address("tcp", "::1", 5000)),
        ("localhost:80", Address("tcp", "localhost", 80)),
        ("unix:/run/app.sock", Address("unix", path="/run/app.sock")),
        ("/run/app.sock", Address("unix", path="/run/app.sock")),
        ("app.sock", Address("unix", path="app.sock")),
    ],
)
def test_parse_address(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "[::1]5000", "host:99999", "unix:", "[::1]:x"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


# -- TCP -----------------------------------------------------------------------------------------


def test_ipv4_loopback() -> None:
    with ServerThread(router, ["127.0.0.1:0"]) as served:
        host, port = served.addresses[0]
        assert host == "127.0.0.1" and port > 0
        assert hello_via(("127.0.0.1", port)) == b"Hello World!"


def test_ipv6_loopback() -> None:
    with ServerThread(router, ["[::1]:0"]) as served:
        host, port = served.addresses[0]
        assert host == "::1"
        assert str(served.server.addresses[0]) == f"[::1]:{port}"
        assert hello_via(("::1", port)) == b"Hello World!"
        with pytest.raises(ConnectionRefusedError):
            hello_via(("127.0.0.1", port))  # bound to ::1 only


@pytest.mark.parametrize("text", [":0", "*:0"])
def test_all_interfaces_serves_ipv4_and_ipv6(text: str) -> None:
    with ServerThread(router, [text]) as served:
        _, port = served.addresses[0]
        assert hello_via(("127.0.0.1", port)) == b"Hello World!"
        assert hello_via(("::1", port)) == b"Hello World!"


def test_several_listeners_at_once(tmp_path: Path) -> None:
    path = f"/tmp/smisk-multi-{os.getpid()}.sock"
    with ServerThread(router, ["127.0.0.1:0", "[::1]:0", path]) as served:
        for address in served.addresses:
            assert hello_via(address) == b"Hello World!"
    assert not os.path.exists(path)


def test_closed_server_refuses_tcp() -> None:
    with ServerThread(router, ["127.0.0.1:0"]) as served:
        address = served.addresses[0]
        served.close()
        with pytest.raises(ConnectionRefusedError):
            hello_via(address)


# -- unix sockets --------------------------------------------------------------------------------


def stale_socket(path: Path) -> None:
    """Leave a socket file nobody listens on, as a crashed server does."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def test_unix_socket_file_created_and_removed(sockdir: Path) -> None:
    path = sockdir / "app.sock"
    with ServerThread(router, [str(path)]) as served:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert hello_via(str(path)) == b"Hello World!"
        served.close()
        assert not path.exists()


def test_stale_unix_socket_replaced(sockdir: Path) -> None:
    path = sockdir / "app.sock"
    stale_socket(path)
    with pytest.raises(ConnectionRefusedError):
        hello_via(str(path))
    with ServerThread(router, [str(path)]):
        assert hello_via(str(path)) == b"Hello World!"
    assert not path.exists()


def test_live_unix_socket_not_stolen(sockdir: Path) -> None:
    path = sockdir / "app.sock"
    with ServerThread(router, [str(path)]):
        with pytest.raises(OSError) as raised:
            bind_listener(str(path))
        assert raised.value.errno == errno.EADDRINUSE
        assert hello_via(str(path)) == b"Hello World!"  # the first server still owns it


def test_regular_file_not_replaced(sockdir: Path) -> None:
    path = sockdir / "app.sock"
    path.write_text("precious")
    with pytest.raises(OSError) as raised:
        bind_listener(str(path))
    assert raised.value.errno == errno.EEXIST
    assert path.read_text() == "precious"


def test_socket_file_replaced_by_another_is_not_removed(sockdir: Path) -> None:
    path = sockdir / "app.sock"
    listener = bind_listener(str(path))
    os.unlink(path)
    stale_socket(path)  # someone else's file now
    listener.close()
    assert path.exists()


def test_unix_socket_mode(sockdir: Path) -> None:
    path = sockdir / "app.sock"
    listener = bind_listener(f"unix:{path}", mode=0o660)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
    finally:
        listener.close()
    assert not path.exists()


# -- the listening socket inherited on fd 0 ------------------------------------------------------


def test_inherited_listener_rejects_what_is_not_listening() -> None:
    read_end, write_end = os.pipe()
    first, second = socket.socketpair()
    try:
        assert inherited_listener(read_end) is None
        assert inherited_listener(first.fileno()) is None
    finally:
        for fd in (read_end, write_end):
            os.close(fd)
        first.close()
        second.close()


def test_inherited_listener_wraps_a_copy() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        listener = inherited_listener(sock.fileno())
        assert listener is not None
        assert listener.bound_address == Address("tcp", "127.0.0.1", sock.getsockname()[1])
        listener.close()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)  # original still open
    finally:
        sock.close()


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_child_serves_socket_inherited_on_fd0(sockdir: Path, kind: str) -> None:
    if kind == "tcp":
        sock = socket.create_server(("127.0.0.1", 0))
        address: str | tuple[str, int] = ("127.0.0.1", sock.getsockname()[1])
    else:
        path = str(sockdir / "inherited.sock")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
        sock.listen(16)
        address = path
    with sock, server_process("inherit", stdin=sock) as proc:
        ready = proc.ready  # type: ignore[attr-defined]
        assert (tcp_address(ready) if kind == "tcp" else ready.removeprefix("unix:")) == address
        for _ in range(3):
            assert hello_via(address) == b"Hello World!"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    if kind == "unix":
        assert os.path.exists(address)  # the file belongs to whoever created the socket


def test_spawn_fcgi_hands_over_the_socket(sockdir: Path) -> None:
    spawn = shutil.which("spawn-fcgi")
    assert spawn is not None, "spawn-fcgi is not installed"
    path = str(sockdir / "spawned.sock")
    with server_process("inherit", prefix=[spawn, "-n", "-s", path, "--"]) as proc:
        assert hello_via(path) == b"Hello World!"
        with FastCGIClient(path) as client:
            response = client.request(params={"REQUEST_URI": "/big?n=200000"})
            assert len(response.split()[1]) == 200000
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
