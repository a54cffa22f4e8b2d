"""Write the hand-made seed inputs into ``fuzz/corpus/<target>/seed-*`` (idempotent).

The targets read a few option bytes first (atheris' FuzzedDataProvider), then the payload: each
seed is option bytes + payload + as many filler bytes again, so the payload lands where the
target takes it. The fuzzers' own finds live next to the seeds.
"""

from __future__ import annotations

import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from smisk.codec import encode_params  # noqa: E402
from smisk.protocol.records import encode_record  # noqa: E402


def _request(request_id: int, body: bytes, keep: int = 1) -> bytes:
    params = encode_params([(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"%d" % len(body))])
    return b"".join(
        [
            encode_record(1, request_id, bytes((0, 1, keep, 0, 0, 0, 0, 0))),
            encode_record(4, request_id, params),
            encode_record(4, request_id),
            encode_record(5, request_id, body) if body else b"",
            encode_record(5, request_id),
        ]
    )


RECORDS = [
    _request(1, b"a=1"),
    _request(1, b"") + _request(2, b"x" * 40, 0),
    encode_record(9, 0, encode_params([(b"FCGI_MAX_CONNS", b"")])) + encode_record(42, 0),
    _request(3, b"abc") + encode_record(2, 3),
]
MULTIPART = [
    b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue\r\n--b--\r\n',
    b'--b\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nfile body\r\n--b\r\n"
    b"Content-Disposition: form-data; name*=utf-8''%C3%A5\r\n\r\n\xc3\xa5\r\n--b--\r\n",
]
URLENCODED = [b"a=1&b=2&a=3", b"x=%C3%A5+%E2%82%AC&y&z=", b"sid=abc; theme=dark; a=%zz"]
URLS = [
    "http://user:pw@example.com:8080/p/a?q=1&r#frag",
    "https://[::1]:443/x",
    "/relative/path?x=%20",
    "mailto:someone@example.com",
]
CODEC = [
    b"a b&c=%41%c3%a5<&amp;>",
    "\u20ac &lt;x&gt; %%".encode(),
    b"\x01\x06\x00\x01\x00\x08\x00\x00",
]
FRAMING = [
    encode_record(1, 1, bytes((0, 1, 1, 0, 0, 0, 0, 0))) + encode_record(4, 1, b"ab"),
    encode_record(5, 2, b"x" * 40) + encode_record(8, 2, b"y" * 9)[:-3],
    b"\x02" + encode_record(6, 1, b"after a bad version")[1:],
]
PARAMS = [encode_params([(b"A", b"1"), (b"B" * 200, b"v" * 300)]), b"\x80\x00\x00\x01\x01ab"]
_GET = _request(1, b"")
REQUEST_HEADS = [
    _GET,  # BEGIN, PARAMS, empty PARAMS, empty STDIN: a GET as nginx sends it
    _GET[:-8],  # the same without the STDIN record (a body follows)
    encode_record(1, 2, bytes((0, 1, 0, 0, 0, 0, 0, 0)))
    + encode_record(4, 2, encode_params([(b"A", b"1")])[:3])
    + encode_record(4, 2, encode_params([(b"A", b"1")])[3:])
    + encode_record(4, 2),  # a pair cut across two PARAMS records
    _request(1, b"a=1"),  # a body: left to the record path
]


def _write(target: str, payload: bytes, options: bytes) -> None:
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    data = options + payload + bytes(len(payload))
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(data)


def main() -> None:
    """Write every seed."""
    for raw in RECORDS:
        _write("records", raw, b"\x10\x00\x28\x08\x01")
    for body in MULTIPART:
        _write("multipart", body, b"\x00\xff\x0f\xff\x14\x00\xff\x00\x01")
    for body in URLENCODED:
        _write("urlencoded", body, b"\x00\x01\xff\x07")
    for text in URLS:
        _write("url", text.encode(), b"\x00")
    for raw in CODEC:
        _write("codec", raw, b"\x00\x01\x00\x05\x00\x00\x80")
    for raw in FRAMING:
        _write("framing", raw, b"\x00\x08\x00\x10")
    for raw in PARAMS:
        _write("params", raw, b"")
    for raw in REQUEST_HEADS:
        _write("request_head", raw, b"")


if __name__ == "__main__":
    main()
