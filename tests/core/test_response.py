"""Response: headers, begin, the write family, Status and Content-Type, set_cookie, send_file.
Each test runs with a sync and an async service, through nginx."""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.client
import json
import os
import time
from pathlib import Path

import pytest

from smisk.core import Response
from smisk.protocol.records import unpack_header
from tests.core.conftest import Web
from tests.support.fcgi_client import (
    END,
    STDOUT,
    FastCGIClient,
    begin_record,
    params_records,
    stdin_records,
)
from tests.support.nginx import FASTCGI_PARAMS, Nginx
from tests.support.serving import wait_until


def test_default_content_type(web: Web) -> None:
    status, headers, body = web.get("/notype")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert body == b"no type"


def test_empty_service_still_answers(web: Web) -> None:
    status, headers, body = web.get("/empty")
    assert (status, body) == (200, b"")
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_status_header_passes_through(web: Web) -> None:
    status, headers, body = web.get("/status")
    assert status == 404
    assert headers["content-type"] == "text/plain"
    assert body == b"missing"
    assert "status" not in headers  # nginx turned it into the status line


def test_headers_find_header_and_begin(web: Web) -> None:
    status, headers, body = web.get("/headers")
    assert status == 200
    assert headers["content-type"] == "text/plain"
    assert headers["x-a"] == "1"
    result = json.loads(body)
    # prefix match, case-insensitive; "" matches the first line; non-str items are skipped
    assert result["found"] == [0, 1, 1, 0, -1]
    assert result["has_begun"] == [False, True]
    assert result["again"] == "output has already begun"


def test_write_family(web: Web) -> None:
    status, _, body = web.get("/write_variants")
    assert status == 200
    assert body == ("Hello World \u00e5 5 bytes|lines||write|out|7!|cut-her|False".encode())


def test_no_extra_crlf_and_one_header_block_through_raw_fastcgi(web: Web) -> None:
    with web.fcgi() as client:
        response = client.request(params={"SCRIPT_NAME": "/hello"})
    head, _, body = bytes(response.stdout).partition(b"\r\n\r\n")
    assert body == b"<h1>Hello World!</h1>"  # no stray CRLF before the body
    assert head == b"Content-Type: text/html; charset=utf-8"
    assert response.app_status == 0


def test_small_response_is_one_stdout_record(web: Web) -> None:
    with web.fcgi() as client:
        response = client.request(params={"SCRIPT_NAME": "/write_variants"})
    stdout_records = [length for rtype, length in response.records if rtype == 6 and length]
    assert len(stdout_records) == 1  # headers and body in one hand-off


def test_large_output_arrives_whole(web: Web) -> None:
    size = 8 * 1024 * 1024 + 123
    status, headers, body = web.get(f"/large?size={size}")
    assert status == 200
    assert int(headers["content-length"]) == size == len(body)
    block = bytes(range(256)) * 256
    assert hashlib.sha256(body).digest() == hashlib.sha256((block * 200)[:size]).digest()


# -- set_cookie ------------------------------------------------------------------------------


def _cookie(web: Web, query: str) -> str:
    status, headers, _ = web.get(f"/cookie?{query}")
    assert status == 200
    return headers["set-cookie"]


def test_set_cookie_defaults(web: Web) -> None:
    assert _cookie(web, "name=n+a&value=v%3Ba+l") == "n%20a=v%3Ba%20l; Version=1"


def test_set_cookie_all_attributes(web: Web) -> None:
    before = time.time()
    line = _cookie(
        web,
        "name=b&value=c&comment=my+c&domain=.ex.com&path=/a+b/c&secure=1&version=2"
        "&max_age=100&http_only=1&same_site=Lax",
    )
    after = time.time()
    parts = line.split("; ")
    assert parts[:6] == [
        "b=c",
        "Version=2",
        "Comment=my%20c",
        "Domain=.ex.com",
        "Path=/a b/c",  # not URL-encoded: browsers match it literally
        "Max-Age=100",
    ]
    assert parts[6].startswith("Expires=")
    expires = email.utils.parsedate_to_datetime(parts[6][len("Expires=") :]).timestamp()
    assert before + 100 - 2 <= expires <= after + 100 + 2
    assert parts[7:] == ["Secure", "HttpOnly", "SameSite=Lax"]


def test_set_cookie_max_age_zero_expires_in_the_past(web: Web) -> None:
    line = _cookie(web, "name=gone&value=&max_age=0")
    assert "Max-Age=0" in line
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in line


def test_set_cookie_is_not_in_request_cookies(web: Web) -> None:
    _status, _, body = web.get("/cookie?name=new&value=1", headers={"Cookie": "old=2"})
    assert body == b'cookies: {"old": "2"}'


def test_set_cookie_after_output_refused(web: Web) -> None:
    _status, headers, body = web.get("/cookie_late")
    assert "set-cookie" not in headers
    assert body == b"begun|Cookies can not be set when output has already begun."


def test_set_cookie_parameter_names_and_order() -> None:
    import inspect

    names = list(inspect.signature(Response.set_cookie).parameters)
    assert names[:10] == [
        "self",
        "name",
        "value",
        "comment",
        "domain",
        "path",
        "secure",
        "version",
        "max_age",
        "http_only",
    ]
    assert "same_site" in names


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("line=X-Line:%201&bytes=1", b"header lines must be str, not bytes"),
        ("line=X%20Line:%201", b"must be a token"),
        ("line=X-Line", b"without &#x27;:&#x27;"),
        ("line=X-Line:%20a%00b", b"header line contains a control character"),
        # nginx answered 502 to these, and smisk logged nothing
        ("line=Status:%20ok", b"invalid Status"),
        ("line=Status:%20404Not%20Found", b"invalid Status"),
        ("line=Status:%2099%20Low", b"invalid Status"),
        ("line=Status:", b"invalid Status"),
        ("line=Status:%20100%20Continue", b"invalid Status"),
        ("line=Status:%20999%20Custom", b"invalid Status"),
    ],
)
def test_a_bad_header_line_is_a_500_and_nothing_of_it_is_sent(
    web: Web, query: str, message: bytes
) -> None:
    status, headers, body = web.get(f"/header_line?{query}")
    assert status == 500
    assert not any(name.startswith("x") for name in headers)
    assert b"never-sent" not in body
    assert message in body
    assert web.get("/hello")[0] == 200


def test_a_good_header_line_is_sent(web: Web) -> None:
    status, headers, body = web.get("/header_line?line=X-Line:%20%20a:b%20")
    assert (status, headers["x-line"], body) == (200, "a:b", b"never-sent")


# -- send_file -------------------------------------------------------------------------------


def test_send_file_uses_x_accel_redirect_under_nginx(web: Web, served_files: Path) -> None:
    status, _headers, body = web.get("/sendfile?path=/protected/small.txt")
    assert status == 200
    assert body == (served_files / "small.txt").read_bytes()  # nginx served the file


def test_send_file_big_file_through_nginx(web: Web, served_files: Path) -> None:
    status, _, body = web.get("/sendfile?path=/protected/big.bin")
    assert status == 200
    assert hashlib.sha256(body).digest() == _digest(served_files / "big.bin")


@pytest.mark.parametrize(
    ("location", "header"),
    [
        ("lighttpd14", "x-lighttpd-send-file"),
        ("lighttpd", "x-sendfile"),
        ("apache", "x-sendfile"),
    ],
)
def test_send_file_header_follows_server_software(web: Web, location: str, header: str) -> None:
    status, headers, body = web.get(f"/{location}/sendfile?path=/srv/file.bin")
    assert status == 200
    assert headers[header] == "/srv/file.bin"
    assert body == b""


def test_send_file_after_output_refused(web: Web) -> None:
    _, headers, body = web.get("/sendfile_late")
    assert body == b"begun|output has already begun"
    assert "x-accel-redirect" not in headers


def _digest(path: Path) -> bytes:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.digest()


def test_send_file_streamed_when_front_end_cannot(web: Web, served_files: Path) -> None:
    """Unknown SERVER_SOFTWARE: the server streams the file itself, byte-exact."""
    path = served_files / "big.bin"
    status, headers, body = web.get(f"/unknown/sendfile?path={path}")
    assert status == 200
    assert int(headers["content-length"]) == path.stat().st_size == len(body)
    assert headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(body).digest() == _digest(path)


def test_send_file_streamed_with_sendfile_header_disabled(
    web_zero: Web, served_files: Path
) -> None:
    """``sendfile_header = ""``: no front-end header even under nginx."""
    path = served_files / "small.txt"
    status, headers, body = web_zero.get(f"/sendfile?path={path}")
    assert status == 200
    assert "x-accel-redirect" not in headers
    assert headers["content-type"] == "text/plain"
    assert body == path.read_bytes()


def test_send_file_missing_file_gives_error_page(web_zero: Web) -> None:
    status, _, body = web_zero.get("/sendfile?path=/nonexistent/file")
    assert status == 500
    assert b"No such file or directory" in body


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/null"])
def test_send_file_of_something_not_a_regular_file_gives_error_page(
    web_zero: Web, tmp_path: Path, kind: str
) -> None:
    """A FIFO without a writer held an executor thread in open() for good (the request hung);
    /dev/zero streamed without end."""
    path = kind
    if kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    status, _, body = web_zero.get(f"/sendfile?path={path}")
    assert status == 500
    assert b"send_file: not a regular file" in body
    assert web_zero.get("/hello")[0] == 200


def test_streamed_file_does_not_block_other_requests(web_zero: Web, served_files: Path) -> None:
    """A client that does not read a streamed file stalls only its own request: another
    request is served meanwhile; then the whole file arrives byte-exact."""
    path = served_files / "big.bin"
    with web_zero.fcgi() as slow, web_zero.fcgi() as other:
        params = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "/sendfile",
            "QUERY_STRING": f"path={path}",
        }
        slow.send(begin_record(1) + params_records(1, params) + stdin_records(1, b""))
        records = slow.stream(1)
        first = next(records)  # streaming has started; we stop reading now
        assert first[0] == 6
        quick = other.request(params={"SCRIPT_NAME": "/hello"})
        assert quick.split()[1] == b"<h1>Hello World!</h1>"
        data = bytearray(first[1])
        for rtype, content in records:
            if rtype == 6:
                data += content
        _, _, body = bytes(data).partition(b"\r\n\r\n")
        assert hashlib.sha256(body).digest() == _digest(path)


def _open_in_this_process(path: Path) -> int:
    """How many of this process's descriptors (the app servers run in it) are open on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


def test_a_streamed_file_is_closed_when_the_client_leaves(
    web_zero: Web, served_files: Path
) -> None:
    path = served_files / "big.bin"
    params = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/sendfile", "QUERY_STRING": f"path={path}"}
    with web_zero.fcgi() as client:
        client.send(begin_record(1) + params_records(1, params) + stdin_records(1, b""))
        assert next(client.stream(1))[0] == 6  # streaming has started
        assert _open_in_this_process(path) == 1
    wait_until(lambda: _open_in_this_process(path) == 0, what="the file closed")


# -- a streamed file whose size is not what fstat said -------------------------------------------

CHANGING_SIZE = 1 << 30  # sparse: flow control stops the server long before it read this much


def test_a_proc_file_is_streamed_whole_without_a_length(web_zero: Web) -> None:
    """/proc files report size 0: no Content-Length is announced, the file is read to its end
    and nginx chunks it."""
    status, headers, body = web_zero.get("/sendfile?path=/proc/self/status")
    assert status == 200
    assert "content-length" not in headers and headers["transfer-encoding"] == "chunked"
    assert body.startswith(b"Name:") and b"\nPid:" in body and b"\nVmRSS:" in body


def _sparse(path: Path, size: int) -> None:
    """A file of ``size`` zero bytes that takes no disk space."""
    path.touch()
    os.truncate(path, size)


def _stream_sendfile(web: Web, path: Path) -> tuple[FastCGIClient, int, bytearray]:
    """Start streaming ``path`` over raw FastCGI; return the client, the announced
    Content-Length and the body bytes received so far (the file is open by then)."""
    params = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/sendfile", "QUERY_STRING": f"path={path}"}
    client = web.fcgi()
    client.send(begin_record(1) + params_records(1, params) + stdin_records(1, b""))
    head = bytearray()
    while b"\r\n\r\n" not in head:
        record = client.read_record()
        assert record is not None and record[0] == STDOUT, record
        head += record[2]
    head, _, body = bytes(head).partition(b"\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
    return client, int(fields["Content-Length"]), bytearray(body)


def _rest_of_body(client: FastCGIClient, body: bytearray) -> bool:
    """Read the body until END_REQUEST (True) or the end of the connection (False), which
    may come inside a record."""
    data = bytearray()
    while chunk := client.sock.recv(1 << 20):
        data += chunk
        while len(data) >= 8:
            _, rtype, _, length, padding = unpack_header(bytes(data[:8]))
            if len(data) < 8 + length + padding:
                break
            if rtype == END:
                return True
            if rtype == STDOUT:
                body += data[8 : 8 + length]
            del data[: 8 + length + padding]
    return False


def test_a_file_that_grows_while_sent_gives_exactly_the_announced_length(
    web_zero: Web, tmp_path: Path
) -> None:
    """Bytes appended after the head was sent are not sent: the body is the announced length,
    END_REQUEST follows, and the connection serves the next request."""
    path = tmp_path / "growing.bin"
    _sparse(path, 64 << 20)
    client, announced, body = _stream_sendfile(web_zero, path)
    with client:
        with open(path, "ab") as handle:
            handle.write(b"appended after the head was sent" * 32768)
        for rtype, content in client.stream(1):  # up to END_REQUEST
            if rtype == STDOUT:
                body += content
        next_answer = client.request(params={"SCRIPT_NAME": "/hello"}).split()[1]
    assert announced == 64 << 20
    assert len(body) == announced and not body.strip(b"\0")
    assert next_answer == b"<h1>Hello World!</h1>"


def test_a_file_that_shrinks_while_sent_breaks_the_connection_off(
    web_zero: Web, tmp_path: Path
) -> None:
    """The announced length cannot be sent: no END_REQUEST (it would pass the short body as
    whole) and no padding; the connection ends, and the server goes on serving."""
    path = tmp_path / "shrinking.bin"
    _sparse(path, CHANGING_SIZE)
    client, announced, body = _stream_sendfile(web_zero, path)
    with client:
        os.truncate(path, 1 << 20)
        ended = _rest_of_body(client, body)
    assert announced == CHANGING_SIZE
    assert not ended and len(body) < announced
    assert web_zero.get("/hello")[0] == 200


# nginx keeps at most its in-memory buffers of a response (no temp file), so the server stops
# reading the file while the client does not read.
CAPPED_LOCATION = f"""
    location /capped/ {{
      include {FASTCGI_PARAMS};
      fastcgi_pass backend;
      fastcgi_keep_conn on;
      fastcgi_max_temp_file_size 0;
    }}"""


def test_a_file_that_shrinks_while_sent_is_truncated_for_the_client(
    web_zero: Web, tmp_path: Path
) -> None:
    """Through nginx: the client gets the announced Content-Length, then fewer bytes and the
    end of the connection."""
    path = tmp_path / "shrinking.bin"
    _sparse(path, CHANGING_SIZE)
    with Nginx(tmp_path / "nginx", [web_zero.address], CAPPED_LOCATION) as nginx:
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=120)
        try:
            conn.request("GET", f"/capped/sendfile?path={path}")
            res = conn.getresponse()
            assert (res.status, res.getheader("content-length")) == (200, str(CHANGING_SIZE))
            first = res.read(1 << 16)
            os.truncate(path, 1 << 20)
            with pytest.raises(http.client.IncompleteRead) as info:
                res.read()
            assert len(first) + len(info.value.partial) < CHANGING_SIZE
        finally:
            conn.close()
        assert "upstream prematurely closed connection" in nginx.error_log()
        assert nginx.get("/hello")[0] == 200


def test_a_streamed_file_sends_the_length_the_application_announced(
    web_zero: Web, served_files: Path
) -> None:
    path = served_files / "small.txt"
    status, headers, body = web_zero.get(f"/sendfile?path={path}&length=5")
    assert (status, headers["content-length"], body) == (200, "5", path.read_bytes()[:5])
    status, headers, body = web_zero.get(f"/sendfile?path={path}&length=lots")
    assert status == 500 and b"invalid Content-Length for a streamed file" in body
    assert web_zero.get("/hello")[0] == 200
