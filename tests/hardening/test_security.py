"""Who may connect (allow_from / FCGI_WEB_SERVER_ADDRS, unix socket mode and owner), and what a
hostile client can make the application emit: injected header lines, unescaped text or
tracebacks in error pages, session ids it chose, upload files left readable or behind."""

from __future__ import annotations

import collections
import glob
import ipaddress
import math
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from smisk.core.application import Application
from smisk.core.errors import ServiceUnavailable
from smisk.runtime.handler import ApplicationHandler
from smisk.server import bind_listener
from smisk.server.limits import ServerLimits, is_allowed, parse_allow_from
from smisk.sessions.ids import ID_ALPHABET, ID_LENGTH, InvalidSessionIdError, check_id, new_id
from tests.hardening.conftest import MakeServer
from tests.support.fcgi_client import ABORT, FastCGIClient, begin_record, params_records
from tests.support.serving import wait_until

# -- allow_from -------------------------------------------------------------------------------

ALLOW = parse_allow_from("127.0.0.1, 10.0.0.0/8 [::1] fd00::/8")


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        (("127.0.0.1", 5000), True),
        (("127.0.0.2", 5000), False),
        (("10.200.3.4", 1), True),
        (("::1", 1, 0, 0), True),
        (("fd12::5", 1, 0, 0), True),
        (("fe80::1%eth0", 1, 0, 2), False),
        (("::ffff:10.1.2.3", 1, 0, 0), True),  # IPv4 on a dual-stack socket
        (("::ffff:192.168.1.1", 1, 0, 0), False),
        ("", False),  # a unix socket peer
        (b"\x00abstract", False),
        (None, False),
    ],
)
def test_is_allowed(peer: object, allowed: bool) -> None:
    assert is_allowed(peer, ALLOW) is allowed
    assert is_allowed(peer, ()) is True  # nothing configured: everyone


def test_allow_from_parsing_and_environment() -> None:
    assert ALLOW[1] == ipaddress.ip_network("10.0.0.0/8")
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_allow_from("10.0.0.300")
    env = {"FCGI_WEB_SERVER_ADDRS": "127.0.0.1,::1", "SMISK_ALLOW_FROM": "10.0.0.0/8"}
    assert len(ServerLimits.from_environ(env).allow_from) == 3
    assert ServerLimits.from_environ({}).allow_from == ()
    with pytest.raises(ValueError, match="SMISK_MAX_BODY_SIZE"):
        ServerLimits.from_environ({"SMISK_MAX_BODY_SIZE": "lots"})


def hello_served(address: Any) -> bool:
    try:
        with FastCGIClient(address, timeout=5) as client:
            return client.request(params={"REQUEST_URI": "/hello"}).split()[1] == b"Hello World!"
    except (ConnectionError, OSError):
        return False


def test_tcp_peer_outside_allow_from_is_refused_and_logged(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    refused = make_server(ServerLimits(allow_from=parse_allow_from("10.0.0.0/8")))
    assert not hello_served(refused.addresses[0])
    assert "not in allow_from" in caplog.text
    allowed = make_server(ServerLimits(allow_from=parse_allow_from("127.0.0.0/8")))
    assert hello_served(allowed.addresses[0])
    assert refused.server.stats.refused_connections == 1
    assert not refused.server.connections


def test_ipv6_peer_in_allow_from_is_served(make_server: MakeServer) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        served = make_server(ServerLimits(allow_from=parse_allow_from("::1")), address="[::1]:0")
    except OSError:
        pytest.skip("cannot bind ::1")
    assert hello_served(served.addresses[0])


def test_unix_peers_are_refused_once_allow_from_is_set(
    make_server: MakeServer, sockdir: Path
) -> None:
    limits = ServerLimits(allow_from=parse_allow_from("127.0.0.1"))
    served = make_server(limits, address=str(sockdir / "a.sock"))
    assert not hello_served(served.addresses[0])
    open_server = make_server(address=str(sockdir / "b.sock"))
    assert hello_served(open_server.addresses[0])


def test_unix_socket_mode_and_owner(sockdir: Path) -> None:
    path = str(sockdir / "m.sock")
    gid = os.getgid()
    listener = bind_listener(path, mode=0o660, owner=f"{os.getuid()}:{gid}")
    try:
        info = os.stat(path)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert (info.st_uid, info.st_gid) == (os.getuid(), gid)
    finally:
        listener.close()
    with pytest.raises(ValueError, match="unknown user"):
        bind_listener(path, owner="no-such-user-here")
    assert not os.path.exists(path)


# -- what the application emits ---------------------------------------------------------------


class Hostile(Application):
    """Routes that try to misbehave with client-chosen text."""

    show_traceback = False

    def service(self) -> None:
        path = self.request.env["REQUEST_URI"].partition("?")[0]
        query = self.request.get
        if path == "/inject":
            self.response.headers.append(f"X-Echo: {query.get('v', '')}")
        elif path == "/fail":
            raise RuntimeError(f"bad input {query.get('v', '')}")
        elif path == "/unavailable":
            raise ServiceUnavailable("no answer from the store at 10.1.2.3:6379")
        elif path == "/upload":
            self._describe_uploads()
            return
        self.response.write("ok\n")

    def _describe_uploads(self) -> None:
        for info in self.request.files.values():
            mode = stat.S_IMODE(os.stat(info["path"]).st_mode)
            self.response.write(f"{info['path']} {mode:o}\n")
            if self.request.get.get("then") == "fail":
                raise RuntimeError("failing after the upload")
            if self.request.get.get("then") == "wait":
                self.response.out.flush()
                while True:  # until the abort makes the next write raise
                    self.response.write(" ")
                    self.response.out.flush()
                    self.request.input.read(0)
                    os.sched_yield()


@pytest.fixture
def hostile(make_server: MakeServer) -> Any:
    handler = ApplicationHandler(Hostile(), threads=4)
    served = make_server(handler=handler)
    yield served.addresses[0]
    served.close()
    handler.close()


def get(address: Any, uri: str, **params: str) -> tuple[dict[str, str], bytes]:
    with FastCGIClient(address) as client:
        query = uri.partition("?")[2]
        env = {"REQUEST_URI": uri, "QUERY_STRING": query, "SERVER_NAME": "h", **params}
        return client.request(params=env).split()


def test_crlf_in_a_header_value_is_refused(hostile: Any) -> None:
    head, body = get(hostile, "/inject?v=a%0D%0ASet-Cookie%3A%20pwn=1")
    assert head["status"].startswith("500")
    assert "set-cookie" not in head and b"\r\nSet-Cookie" not in body  # shown only as a repr


def test_error_page_hides_the_message_and_the_traceback(hostile: Any) -> None:
    head, body = get(hostile, "/fail?v=%3Cscript%3Ealert(1)%3C/script%3E")
    assert head["status"].startswith("500")
    assert b"<script>" not in body and b"script" not in body and b"bad input" not in body
    assert b"Traceback" not in body and b"test_security.py" not in body
    head, body = get(hostile, "/fail", SERVER_NAME="<b>x</b>", SERVER_PORT='"><i>')
    assert b"<b>x</b>" not in body and b'"><i>' not in body


def test_error_page_of_an_error_with_a_status_shows_only_the_status(hostile: Any) -> None:
    head, body = get(hostile, "/unavailable")
    assert head["status"] == "503 Service Unavailable" and head["retry-after"] == "5"
    assert b"<h1>503 Service Unavailable</h1>" in body
    assert b"10.1.2.3" not in body and b"store" not in body


# -- session ids ------------------------------------------------------------------------------


def test_session_ids_are_well_formed_unique_and_uniform() -> None:
    ids = [new_id() for _ in range(4000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == ID_LENGTH and check_id(i) == i for i in ids)
    counts = collections.Counter("".join(ids))
    expected = len(ids) * ID_LENGTH / len(ID_ALPHABET)
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in ID_ALPHABET)
    assert chi2 < 31 + 6 * math.sqrt(2 * 31)  # 31 degrees of freedom; fails ~1e-9 of runs
    per_position = [len({i[p] for i in ids[:400]}) for p in range(ID_LENGTH)]
    assert min(per_position) == len(ID_ALPHABET)  # every position varies fully


@pytest.mark.parametrize(
    "value",
    ["../../etc/passwd", "a" * 31, "a" * 33, "A" * 32, "w" * 32, "0" * 31 + "\n", 123, None, ""],
)
def test_invalid_session_ids_are_rejected(value: object) -> None:
    with pytest.raises(InvalidSessionIdError):
        check_id(value)


# -- upload temp files -------------------------------------------------------------------------


def multipart(boundary: str = "B") -> tuple[dict[str, str], bytes]:
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\n{'u' * 5000}\r\n--{boundary}--\r\n"
    ).encode()
    params = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
        "CONTENT_LENGTH": str(len(body)),
    }
    return params, body


def uploads() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "smisk-upload-*")))


@pytest.mark.parametrize("then", ["ok", "fail", "abort", "disconnect"])
def test_upload_temp_files_are_private_and_removed(hostile: Any, then: str) -> None:
    before = uploads()
    params, body = multipart()
    uri = f"/upload?then={'wait' if then in ('abort', 'disconnect') else then}"
    params |= {"REQUEST_URI": uri, "QUERY_STRING": uri.partition("?")[2]}
    with FastCGIClient(hostile) as client:
        client.send(begin_record(1) + params_records(1, params))
        client.send(b"".join(_stdin(body)))
        if then in ("ok", "fail"):
            response = client.read_response(1)
            text = bytes(response.stdout)
            assert b" 600\n" in text  # the handler saw its file with mode 0600
        else:
            record = client.read_record()  # output has begun: the file exists now
            assert record is not None and b" 600\n" in record[2]
            if then == "abort":
                client.send(_abort(1))
                client.read_response(1)
    wait_until(lambda: uploads() <= before, what="upload temp files to go")


def _stdin(body: bytes) -> list[bytes]:
    from tests.support.fcgi_client import stdin_records

    return [stdin_records(1, body)]


def _abort(request_id: int) -> bytes:
    from smisk.protocol.records import encode_record

    return encode_record(ABORT, request_id)
