"""Request bodies: urlencoded and multipart forms, upload temp files, limits (413), bodies left
unread, and a 100 MiB upload with bounded server memory. Each test runs with a sync and an async
service."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.core.conftest import Web
from tests.support.fcgi_client import begin_record, params_records, stdin_records
from tests.support.nginx import Nginx
from tests.support.serving import ROOT, rss_kib

BOUNDARY = "----smiskBoundary7MA4YWxkTrZu0gW"


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]]) -> bytes:
    """A multipart/form-data body; ``files`` are (name, filename, content type, data)."""
    out = bytearray()
    for name, value in fields:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, filename, ctype, data in files:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def post(web: Web, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    status, _, out = web.get(path, body=body, headers=headers)
    try:
        return status, json.loads(out), out
    except ValueError:
        return status, None, out


def test_urlencoded_form(web: Web) -> None:
    body = b"a=1&a=2&b=x+y&c=%C3%A5&empty=&novalue"
    status, result, _ = post(web, "/form", body, URLENCODED)
    assert status == 200
    assert result == {
        "post": {"a": ["1", "2"], "b": "x y", "c": "\u00e5", "empty": "", "novalue": None},
        "files": {},
    }


def test_urlencoded_body_stays_readable_after_parsing(web: Web) -> None:
    body = b"a=1&b=%C3%A5"
    _status, result, _ = post(web, "/post_then_raw", body, URLENCODED)
    assert result == {"post": {"a": "1", "b": "\u00e5"}, "body": body.decode()}


def test_raw_read_before_post_in_sync_mode(web: Web) -> None:
    """Reading input first leaves the parser nothing (sync, as documented); an async service
    gets forms parsed before it runs and the raw urlencoded body as well."""
    _status, result, _ = post(web, "/raw", b"a=1", URLENCODED)
    assert result["body"] == "a=1"
    assert result["post"] == ({} if web.name.startswith("sync") else {"a": "1"})


def test_multipart_fields_and_files(web: Web) -> None:
    data1 = b"file\ncontent\n\nx\r\n" + bytes(range(256))
    data2 = os.urandom(300_000)
    body = multipart(
        [("f1", "v1"), ("f1", "v2"), ("empty", ""), ("ml", "line1\r\nline2"), ("u", "\u00e5")],
        [
            ("up", "a.txt", "text/plain", data1),
            ("up", "b.bin", "application/octet-stream", data2),
            ("one", "../../etc/passwd", "text/plain", b"not really"),
            ("win", "C:\\dir\\f.txt", "text/plain", b"w"),
        ],
    )
    status, result, raw = post(web, "/form", body, MULTIPART)
    assert status == 200, raw
    assert result["post"] == {"f1": ["v1", "v2"], "ml": "line1\r\nline2", "u": "\u00e5"}
    files = result["files"]
    first, second = files["up"]  # a repeated name gives a list
    assert (first["filename"], first["content_type"], first["size"]) == (
        "a.txt",
        "text/plain",
        len(data1),
    )
    assert first["sha256"] == hashlib.sha256(data1).hexdigest()  # byte-exact (lone \n kept)
    assert second["sha256"] == hashlib.sha256(data2).hexdigest()
    assert files["one"]["filename"] == "passwd"  # sanitized
    assert files["win"]["filename"] == "f.txt"
    every = [first, second, files["one"], files["win"]]
    for item in every:
        assert item["keys"] == ["content_type", "filename", "path", "size"]
        assert item["exists"] and item["prefix"]
        assert item["mode"] == "0o600"
    # The temp files are gone once the response has arrived.
    assert not any(os.path.exists(item["path"]) for item in every)


def test_upload_temp_files_removed_when_handler_fails(web: Web) -> None:
    body = multipart([("f", "v")], [("up", "a.txt", "text/plain", b"x" * 5000)])
    before = set(os.listdir(_tmpdir()))
    status, _, raw = post(web, "/form_fail", body, MULTIPART)
    assert status == 500
    assert b"handler failed after reading uploads" in raw
    leftovers = {
        name for name in set(os.listdir(_tmpdir())) - before if name.startswith("smisk-upload-")
    }
    assert leftovers == set()


def _tmpdir() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_malformed_multipart_gives_400(web: Web) -> None:
    body = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nno end".encode()
    status, _, raw = post(web, "/form", body, MULTIPART)
    assert status == 400
    assert b"closing boundary missing" in raw


def test_form_over_limit_gives_413(web_limits: Web) -> None:
    status, _, raw = post(web_limits, "/form", b"a=" + b"x" * 200, URLENCODED)
    assert status == 413
    assert b"<title>413 Request Entity Too Large</title>" in raw
    assert b"form data size limit exceeded" in raw
    assert web_limits.get("/hello")[0] == 200


def test_form_with_too_many_fields_gives_413(web_limits: Web) -> None:
    """Under the size limit, over the field count: the fields are never built (900,000 short
    fields in 9 MB grew a worker by 110 MB)."""
    status, _, raw = post(web_limits, "/form", b"&".join([b"a=1"] * 6), URLENCODED)
    assert status == 413
    assert b"too many fields in form data: more than 5" in raw
    status, result, _ = post(web_limits, "/form", b"a=1&b=2&c=3&d=4&e=5", URLENCODED)
    assert (status, result["post"]) == (200, {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"})
    assert web_limits.get("/hello")[0] == 200


def test_multipart_over_limit_gives_413(web_limits: Web) -> None:
    body = multipart([], [("up", "a.bin", "application/octet-stream", b"x" * 3000)])
    status, _, raw = post(web_limits, "/form", body, MULTIPART)
    assert status == 413
    assert b"multipart" in raw and b"limit exceeded" in raw


def test_limits_apply_without_content_length(web_limits: Web) -> None:
    """No CONTENT_LENGTH (a streamed body): the limit stops the parser as the data arrives."""
    params = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/form",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
    }
    with web_limits.fcgi() as client:
        client.send(begin_record(1) + params_records(1, params) + stdin_records(1, b"a=" * 500))
        headers, body = client.read_response(1).split()
    assert headers["status"] == "413 Request Entity Too Large"
    assert b"form data size limit exceeded" in body


def test_form_under_limit_is_parsed(web_limits: Web) -> None:
    status, result, _ = post(web_limits, "/form", b"a=1", URLENCODED)
    assert (status, result["post"]) == (200, {"a": "1"})


def test_multipart_fields_together_over_the_form_limit_give_413(web_fields: Web) -> None:
    """Each field is under the per-field limit; together they pass ``max_formdata_size``."""
    over = multipart([(f"f{i}", "x" * 400) for i in range(3)], [])
    status, _, raw = post(web_fields, "/form", over, MULTIPART)
    assert status == 413
    assert b"form data size limit exceeded" in raw and b"1000" in raw
    under = multipart([(f"f{i}", "x" * 400) for i in range(2)], [])
    status, result, _ = post(web_fields, "/form", under, MULTIPART)
    assert (status, result["post"]) == (200, {"f0": "x" * 400, "f1": "x" * 400})


def test_file_parts_over_the_form_limit_still_stream_to_disk(web_fields: Web) -> None:
    data = os.urandom(1 << 20)  # a thousand times the form limit: files do not count
    body = multipart([("f", "x" * 900)], [("up", "a.bin", "application/octet-stream", data)])
    status, result, raw = post(web_fields, "/upload_digest", body, MULTIPART)
    assert status == 200, raw[:2000]
    assert result["post"] == {"f": "x" * 900}
    assert result["files"]["up"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
def test_zero_limits_leave_body_unread(web_zero: Web, kind: str) -> None:
    if kind == "urlencoded":
        body, headers = b"a=1&b=2", URLENCODED
    else:
        body, headers = multipart([("a", "1")], [("f", "x.txt", "text/plain", b"x")]), MULTIPART
    status, result, _ = post(web_zero, "/raw", body, headers)
    assert status == 200
    assert result == {"body": body.decode("latin-1"), "post": {}, "files": []}


# -- 100 MiB upload, measured in a child process -------------------------------------------------

UPLOAD_SIZE = 100 * 1024 * 1024
RSS_GROWTH_LIMIT_KIB = 48 * 1024  # far below the upload: the body is never held in memory


def _upload_body(block: bytes) -> tuple[int, Iterator[bytes], str]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="big"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    count = UPLOAD_SIZE // len(block)
    sha = hashlib.sha256()
    for _ in range(count):
        sha.update(block)

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(count):
            yield block
        yield tail

    return len(head) + UPLOAD_SIZE + len(tail), chunks(), sha.hexdigest()


@pytest.mark.slow
def test_100_mib_upload_with_bounded_memory(mode: str, tmp_path: Path) -> None:
    import tempfile

    sockdir = Path(tempfile.mkdtemp(prefix="smisk-up-", dir="/tmp"))
    address = str(sockdir / "app.sock")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.core.serve_app", address, mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        ready = ""
        while not ready.startswith("READY"):
            ready = proc.stdout.readline()
            assert ready, "the app process exited"
        with Nginx(tmp_path / "nginx", [address]) as nginx:
            web = Web.__new__(Web)
            web.port = nginx.port
            assert web.request("/hello")[0] == 200  # warm: imports, threads, buffers
            baseline = rss_kib(proc.pid)
            length, chunks, digest = _upload_body(os.urandom(1 << 20))
            headers = {**MULTIPART, "Content-Length": str(length)}
            status, _, out = web.request("/upload_digest", body=chunks, headers=headers)
            peak = _peak_kib(proc.pid)
        assert status == 200, out[:2000]
        result = json.loads(out)
        assert result["files"]["big"] == {"size": UPLOAD_SIZE, "sha256": digest}
        print(f"RSS {mode}: baseline {baseline} KiB, peak {peak} KiB")
        assert peak - baseline < RSS_GROWTH_LIMIT_KIB, (baseline, peak)
        assert not [
            n
            for n in os.listdir(_tmpdir())
            if n.startswith("smisk-upload-")
            and os.path.getsize(os.path.join(_tmpdir(), n)) == UPLOAD_SIZE
        ]
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        import shutil

        shutil.rmtree(sockdir, ignore_errors=True)


def _peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_upload_temp_files_removed_when_client_disconnects(web: Web) -> None:
    """The client goes away in the middle of a file part: the partial temp file is removed."""
    from tests.support.serving import wait_until

    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="up"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    params = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/form",
        "CONTENT_TYPE": MULTIPART["Content-Type"],
        "CONTENT_LENGTH": str(50 << 20),
    }
    tmp = _tmpdir()
    before = {n for n in os.listdir(tmp) if n.startswith("smisk-upload-")}

    def new_files() -> set[str]:
        return {n for n in os.listdir(tmp) if n.startswith("smisk-upload-")} - before

    client = web.fcgi()
    try:
        partial = stdin_records(1, head + os.urandom(1 << 20))[:-8]  # no end-of-stdin record
        client.send(begin_record(1) + params_records(1, params) + partial)
        created = wait_until(new_files, timeout=30, what="the upload's temp file")
    finally:
        client.close()
    wait_until(lambda: not (new_files() & created), timeout=30, what="temp file removal")
