"""Regression tests for what the atheris targets under ``fuzz/`` found, one test per finding.

Rules: each test states the finding, the input (reduced by hand) and the fixed behaviour.
"""

from __future__ import annotations

import os

import pytest

from smisk.codec import encode_params
from smisk.core.forms import FormError, MultipartParser
from smisk.protocol import FastCGIConnection, RemoteProtocolError
from smisk.protocol.records import encode_record

GET_VALUES = encode_record(9, 0, encode_params([(b"FCGI_MPXS_CONNS", b"")]))
BAD_VERSION = b"\x00" + encode_record(5, 1, b"x")[1:]


def _outcome(pieces: list[bytes]) -> tuple[bytes, bool]:
    conn = FastCGIConnection()
    try:
        for piece in pieces:
            conn.receive_data(piece)
    except RemoteProtocolError:
        return conn.data_to_send(), True
    return conn.data_to_send(), False


def test_records_before_a_bad_header_are_handled_however_the_bytes_were_split() -> None:
    """fuzz_records: a GET_VALUES and a version-0 header in one read went unanswered, while the
    same bytes in two reads got an answer. Now the records before the bad one are always
    handled (the answer is flushed before the connection is dropped)."""
    whole = _outcome([GET_VALUES + BAD_VERSION])
    split = _outcome([GET_VALUES, BAD_VERSION])
    assert whole == split
    assert whole[1] is True and whole[0].startswith(b"\x01\x0a")


def _multipart(pieces: list[bytes], tmp_path: os.PathLike[str]) -> int:
    parser = MultipartParser(
        b"b", max_size=74, max_parts=8, max_field_size=120, spool_dir=str(tmp_path), charset="utf-8"
    )
    try:
        for piece in pieces:
            parser.feed(piece)
        parser.close()
    except FormError as error:
        return error.status
    finally:
        parser.cleanup()
    return 200


def test_multipart_error_does_not_depend_on_chunking(tmp_path: os.PathLike[str]) -> None:
    """fuzz_multipart: a malformed part header before the size limit gave 400 when fed in small
    pieces but 413 when the chunk crossing the limit also held the bad header. Now the bytes
    up to the limit are parsed first: the earliest error in the body wins."""
    body = b"--b\r\nno colon here\r\n\r\nvalue\r\n--b--\r\n" + b"\x00" * 100
    whole = _multipart([body], tmp_path)
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    assert whole == _multipart(pieces, tmp_path) == 400
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("size", [74, 75])
def test_multipart_exact_limit(size: int, tmp_path: os.PathLike[str]) -> None:
    """The limit is inclusive: a body of exactly max_size bytes parses, one more is 413."""
    head = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n'
    tail = b"\r\n--b--\r\n"
    body = head + b"v" * (size - len(head) - len(tail)) + tail
    assert _multipart([body], tmp_path) == (200 if size == 74 else 413)


@pytest.mark.parametrize(
    "value",
    [
        "form-data; name*=utf\x00-8''%C3%A5",
        "form-data; name*=\x00''x; filename*=utf-8\x00''y",
        "text/plain; charset=utf\x00-8",
    ],
)
def test_nul_in_a_charset_name_is_not_a_crash(value: str) -> None:
    """fuzz_multipart: a part header naming a charset with NUL in it (``name*=utf\\x00-8''...``)
    made ``bytes.decode`` raise ValueError out of the parser (a 500 instead of a parsed form).
    Now such a charset is unknown: the value is decoded as latin-1."""
    from smisk.core.forms import parse_content_type

    parse_content_type(value)  # never raises, as documented


def test_multipart_part_with_nul_charset_parses(tmp_path: os.PathLike[str]) -> None:
    body = (
        b"--b\r\nContent-Disposition: form-data; name*=utf\x00-8''%C3%A5\r\n"
        b"Content-Type: text/plain; charset=utf\x00-8\r\n\r\nv\r\n--b--\r\n"
    )
    parser = MultipartParser(
        b"b", max_size=-1, max_parts=-1, max_field_size=-1, spool_dir=str(tmp_path), charset="utf-8"
    )
    parser.feed(body)
    parser.close()
    assert parser.fields == {"\xc3\xa5": "v"}
