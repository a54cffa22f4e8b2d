"""Property tests for the parsers a client feeds directly: multipart and urlencoded bodies,
the Cookie header and URLs (records and name-value pairs: tests/protocol/test_properties.py;
C vs Python codec: tests/codec/test_differential.py). The atheris targets under ``fuzz/``
check the same properties for longer."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smisk.core.cookies import parse_cookies
from smisk.core.forms import FormError, MultipartParser, UrlEncodedParser
from smisk.core.url import URL

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CUTS = st.lists(st.integers(0, 5000), max_size=8)
NAMES = st.text("abc\u00e5\u20ac_-. \"';=", min_size=1, max_size=8)
VALUES = st.binary(max_size=300)
BOUNDARY = "bOuNdArY"


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, start = [], 0
    for point in points:
        out.append(data[start:point])
        start = point
    return [*out, data[start:]]


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes, bool]]]:
    parts = draw(st.lists(st.tuples(NAMES, VALUES, st.booleans()), max_size=5))
    chunks = []
    for name, value, is_file in parts:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        disposition = f'form-data; name="{quoted}"'
        if is_file:
            disposition += '; filename="f.bin"'
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        chunks.append(head + value.replace(b"\r\n--", b"\n--") + b"\r\n")
    body = b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()
    return body, parts


def parse_multipart(body: bytes, cuts: list[int], spool: Path, **limits: int) -> object:
    options = {"max_size": -1, "max_parts": -1, "max_field_size": -1} | limits
    parser = MultipartParser(BOUNDARY, spool_dir=str(spool), charset="utf-8", **options)
    try:
        for piece in pieces(body, cuts):
            parser.feed(piece)
        parser.close()
        files = []
        for info in parser.files.values():
            for item in info if isinstance(info, list) else [info]:
                assert stat.S_IMODE(os.stat(item["path"]).st_mode) == 0o600
                files.append(Path(item["path"]).read_bytes())
        return parser.fields, sorted(files)
    except FormError as error:
        return error.status
    finally:
        parser.cleanup()
        assert not list(spool.iterdir())


@SETTINGS
@given(
    case=multipart_bodies(), cuts=CUTS, max_size=st.integers(-1, 2000), max_parts=st.integers(-1, 4)
)
def test_multipart_same_result_in_any_chunks_and_no_file_left(
    case: tuple[bytes, list[tuple[str, bytes, bool]]],
    cuts: list[int],
    max_size: int,
    max_parts: int,
    tmp_path: Path,
) -> None:
    body, parts = case
    whole = parse_multipart(body, [], tmp_path, max_size=max_size, max_parts=max_parts)
    assert parse_multipart(body, cuts, tmp_path, max_size=max_size, max_parts=max_parts) == whole
    if max_size < 0 and max_parts < 0:
        assert whole != 400  # well-formed bodies always parse
        _fields, files = whole  # type: ignore[misc]
        assert sorted(files) == sorted(v.replace(b"\r\n--", b"\n--") for _, v, f in parts if f)


@SETTINGS
@given(body=st.binary(max_size=400), cuts=CUTS)
def test_multipart_garbage_gives_400_or_413_never_a_crash(
    body: bytes, cuts: list[int], tmp_path: Path
) -> None:
    result = parse_multipart(b"--" + BOUNDARY.encode() + b"\r\n" + body, cuts, tmp_path)
    assert result in (400, 413) or isinstance(result, tuple)


@SETTINGS
@given(st.binary(max_size=600), CUTS, st.integers(-1, 700), st.booleans())
def test_urlencoded_same_result_in_any_chunks(
    body: bytes, cuts: list[int], limit: int, tolerant: bool
) -> None:
    def parse(chunks: list[bytes]) -> object:
        parser = UrlEncodedParser(limit, "utf-8", tolerant=tolerant)
        try:
            for chunk in chunks:
                parser.feed(chunk)
            return parser.close()
        except FormError as error:
            assert error.status == 413 and 0 <= limit < len(body)
            return 413
        except UnicodeDecodeError:
            assert not tolerant
            return "undecodable"

    assert parse(pieces(body, cuts)) == parse([body])


@SETTINGS
@given(
    st.one_of(st.binary(max_size=300), st.text(max_size=300)),
    st.sampled_from(["utf-8", None, "x\x00"]),
)
def test_cookie_header_never_raises_and_gives_text(
    header: str | bytes, charset: str | None
) -> None:
    for key, value in parse_cookies(header, charset).items():
        assert isinstance(key, str)
        for item in value if isinstance(value, list) else [value]:
            assert item is None or isinstance(item, str)


@SETTINGS
@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True), st.text(max_size=20), max_size=5
    )
)
def test_cookies_round_trip_through_url_encoding(cookies: dict[str, str]) -> None:
    header = "; ".join(f"{name}={URL.encode(value)}" for name, value in cookies.items())
    assert parse_cookies(header) == cookies


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=120), st.binary(max_size=120), st.text("htps:/@[]?#%:.a1", max_size=60)
    )
)
def test_url_parsing_never_raises_and_formatting_is_stable(text: str | bytes) -> None:
    url = URL(text)
    assert isinstance(url.port, int)
    once = str(url)
    twice = str(URL(once))
    assert str(URL(twice)) == twice
