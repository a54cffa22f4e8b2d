"""Body parsers: urlencoded and incremental multipart (fed whole, byte by byte, at random splits)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smisk.core import Application
from smisk.core.forms import (
    FormError,
    MultipartParser,
    RequestEntityTooLarge,
    UrlEncodedParser,
    parse_content_type,
    sanitize_filename,
)
from smisk.runtime.handler import ApplicationHandler
from tests.support.fcgi_client import FastCGIClient
from tests.support.serving import ServerThread

BOUNDARY = b"----smiskB0undary"


def part(headers: Iterable[str], body: bytes) -> bytes:
    head = "".join(h + "\r\n" for h in headers).encode("utf-8")
    return b"--" + BOUNDARY + b"\r\n" + head + b"\r\n" + body + b"\r\n"


def field(name: str, value: str | bytes) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return part([f'Content-Disposition: form-data; name="{name}"'], data)


def upload(name: str, filename: str, data: bytes, ctype: str | None = "text/plain") -> bytes:
    headers = [f'Content-Disposition: form-data; name="{name}"; filename="{filename}"']
    if ctype is not None:
        headers.append(f"Content-Type: {ctype}")
    return part(headers, data)


def body(*parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    return preamble + b"".join(parts) + b"--" + BOUNDARY + b"--\r\n" + epilogue


def make_parser(spool: Path, **limits: int) -> MultipartParser:
    options = {"max_size": -1, "max_parts": 100, "max_field_size": 1 << 20}
    options.update(limits)
    return MultipartParser(BOUNDARY, spool_dir=str(spool), charset="utf-8", **options)


def chunks(data: bytes, splits: Iterable[int]) -> Iterator[bytes]:
    start = 0
    for end in sorted(set(splits)):
        yield data[start:end]
        start = end
    yield data[start:]


def parse(spool: Path, data: bytes, splits: Iterable[int] = (), **limits: int) -> MultipartParser:
    parser = make_parser(spool, **limits)
    for chunk in chunks(data, splits):
        parser.feed(chunk)
    parser.close()
    return parser


def snapshot(parser: MultipartParser) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fields, and files with contents instead of (random) temp paths."""

    def describe(info: dict[str, Any]) -> dict[str, Any]:
        content = Path(info["path"]).read_bytes()
        return {**{k: v for k, v in info.items() if k != "path"}, "content": content}

    files = {
        key: [describe(i) for i in value] if isinstance(value, list) else describe(value)
        for key, value in parser.files.items()
    }
    return parser.fields, files


MIXED = body(
    field("f1", "v1"),
    field("f1", "v2"),
    field("empty", ""),
    field("ml", "line1\r\nline2"),
    upload("up", "a.txt", b"file\ncontent\n\nx\r\n"),
    upload("bin", "b.bin", bytes(range(256)) * 4 + b"\r\n--" + BOUNDARY[:-1], "application/x-b"),
    field("utf", "\u00e5\u00e4\u00f6"),
    preamble=b"This is the preamble.\r\n",
    epilogue=b"and an epilogue\r\n",
)

EXPECTED_FIELDS = {"f1": ["v1", "v2"], "ml": "line1\r\nline2", "utf": "\u00e5\u00e4\u00f6"}


def test_fields_and_files_whole(tmp_path: Path) -> None:
    parser = parse(tmp_path, MIXED)
    fields, files = snapshot(parser)
    assert fields == EXPECTED_FIELDS
    assert files["up"] == {
        "filename": "a.txt",
        "content_type": "text/plain",
        "size": 17,
        "content": b"file\ncontent\n\nx\r\n",
    }
    assert files["bin"]["content"] == bytes(range(256)) * 4 + b"\r\n--" + BOUNDARY[:-1]
    assert files["bin"]["size"] == len(files["bin"]["content"])
    assert list(parser.files["up"]) == ["filename", "content_type", "path", "size"]


def test_one_byte_at_a_time_gives_the_same_result(tmp_path: Path) -> None:
    whole = snapshot(parse(tmp_path, MIXED))
    bytewise = snapshot(parse(tmp_path, MIXED, splits=range(1, len(MIXED))))
    assert bytewise == whole
    assert bytewise[0] == EXPECTED_FIELDS


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(splits=st.lists(st.integers(min_value=0, max_value=len(MIXED)), max_size=40))
def test_random_split_points_give_identical_results(tmp_path: Path, splits: list[int]) -> None:
    parser = parse(tmp_path, MIXED, splits)
    try:
        fields, files = snapshot(parser)
        assert fields == EXPECTED_FIELDS
        assert files["up"]["content"] == b"file\ncontent\n\nx\r\n"
        assert files["bin"]["content"].startswith(bytes(range(256)))
    finally:
        parser.cleanup()


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.binary(max_size=300),
    value=st.text(max_size=50).filter(lambda v: v != ""),
    splits=st.lists(st.integers(min_value=0, max_value=600), max_size=20),
)
def test_arbitrary_contents_survive_any_split(
    tmp_path: Path, payload: bytes, value: str, splits: list[int]
) -> None:
    data = body(field("v", value), upload("f", "x.bin", payload))
    parser = parse(tmp_path, data, [s for s in splits if s <= len(data)])
    try:
        fields, files = snapshot(parser)
        assert fields == {"v": value}
        if payload:
            assert files["f"]["content"] == payload
        else:
            assert files["f"]["size"] == 0
    finally:
        parser.cleanup()


def test_temp_files_are_private_and_prefixed(tmp_path: Path) -> None:
    parser = parse(tmp_path, MIXED)
    path = Path(parser.files["up"]["path"])
    assert path.parent == tmp_path
    assert path.name.startswith("smisk-upload-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cleanup_removes_every_temp_file_including_repeated_names(tmp_path: Path) -> None:
    data = body(upload("f", "1.txt", b"one"), upload("f", "2.txt", b"two"), upload("g", "3", b"3"))
    parser = parse(tmp_path, data)
    assert [i["filename"] for i in parser.files["f"]] == ["1.txt", "2.txt"]
    assert len(list(tmp_path.iterdir())) == 3
    parser.cleanup()
    parser.cleanup()  # idempotent
    assert list(tmp_path.iterdir()) == []


def test_cleanup_ignores_files_the_application_moved(tmp_path: Path) -> None:
    parser = parse(tmp_path, body(upload("f", "1.txt", b"one")))
    kept = tmp_path / "kept"
    os.rename(parser.files["f"]["path"], kept)
    parser.cleanup()
    assert kept.read_bytes() == b"one"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("\\\\server\\share\\x.txt", "x.txt"),
        ("a\x00b\x1fc\x7f.txt", "abc.txt"),
        ("  spaced.txt ", "spaced.txt"),
        ("..", ""),
        ("dir/", ""),
        ("na\u00efve.txt", "na\u00efve.txt"),
    ],
)
def test_sanitize_filename(raw: str, clean: str) -> None:
    assert sanitize_filename(raw) == clean


def test_client_file_names_are_sanitized(tmp_path: Path) -> None:
    data = body(upload("f", "C:\\Documents\\evil/../../x.txt", b"x"))
    assert parse(tmp_path, data).files["f"]["filename"] == "x.txt"


@pytest.mark.parametrize(
    ("disposition", "name", "filename"),
    [
        ('form-data; name="a"; filename="b.txt"', "a", "b.txt"),
        ("form-data; name=a; filename=b.txt", "a", "b.txt"),
        ("form-data;name=a;filename=b.txt  ", "a", "b.txt"),
        ('form-data; name="a;b"; filename="q\\"uote.txt"', "a;b", 'q"uote.txt'),
        (
            "form-data; name=a; filename=\"x.txt\"; filename*=UTF-8''na%C3%AFve.txt",
            "a",
            "na\u00efve.txt",
        ),
        ("form-data; name=a; filename*=iso-8859-1'en'%E5.txt", "a", "\u00e5.txt"),
        ('FORM-DATA; NAME="a"; FILENAME="up.TXT"', "a", "up.TXT"),
    ],
)
def test_content_disposition_variants(
    tmp_path: Path, disposition: str, name: str, filename: str
) -> None:
    data = body(part([f"Content-Disposition: {disposition}"], b"data"))
    info = parse(tmp_path, data).files[name]
    assert info["filename"] == filename
    assert info["content_type"] == ""  # no Content-Type header: empty, as the original gave


def test_header_names_are_case_insensitive_and_folded_lines_join(tmp_path: Path) -> None:
    data = body(part(["content-disposition: form-data;", '  name="folded"'], b"v"))
    assert parse(tmp_path, data).fields == {"folded": "v"}


def test_nameless_parts_are_skipped_not_merged(tmp_path: Path) -> None:
    nameless = part(["Content-Disposition: form-data"], b"x")
    headerless = part([], b"y")
    data = body(field("a", "1"), nameless, headerless, field("b", "2"))
    assert parse(tmp_path, data).fields == {"a": "1", "b": "2"}


def test_more_than_nine_parts_are_all_parsed(tmp_path: Path) -> None:
    data = body(*(field(f"p{i}", str(i)) for i in range(12)))
    assert parse(tmp_path, data).fields == {f"p{i}": str(i) for i in range(12)}


def test_empty_file_input_is_not_reported_but_an_empty_file_is(tmp_path: Path) -> None:
    data = body(upload("none", "", b"", "application/octet-stream"), upload("zero", "z", b""))
    parser = parse(tmp_path, data)
    assert "none" not in parser.files
    assert parser.files["zero"]["size"] == 0
    assert Path(parser.files["zero"]["path"]).read_bytes() == b""


def test_values_fall_back_to_latin1_and_part_charset_is_honoured(tmp_path: Path) -> None:
    latin = part(['Content-Disposition: form-data; name="l"'], b"\xe5\xe4")
    declared = part(
        ['Content-Disposition: form-data; name="d"', "Content-Type: text/plain; charset=utf-16-le"],
        "hi".encode("utf-16-le"),
    )
    bogus = part(
        ['Content-Disposition: form-data; name="b"', "Content-Type: text/plain; charset=nope"],
        b"ok",
    )
    assert parse(tmp_path, body(latin, declared, bogus)).fields == {
        "l": "\u00e5\u00e4",
        "d": "hi",
        "b": "ok",
    }


def test_strict_charset_raises_when_not_tolerant(tmp_path: Path) -> None:
    parser = MultipartParser(
        BOUNDARY,
        max_size=-1,
        max_parts=10,
        max_field_size=100,
        spool_dir=str(tmp_path),
        charset="utf-8",
        tolerant=False,
    )
    with pytest.raises(UnicodeDecodeError):
        parser.feed(body(field("x", b"\xff")))


def test_transport_padding_after_a_delimiter_is_allowed(tmp_path: Path) -> None:
    data = b"--" + BOUNDARY + b" \t\r\n" + b'Content-Disposition: form-data; name="a"\r\n\r\n1\r\n'
    data += b"--" + BOUNDARY + b"--"
    assert parse(tmp_path, data, splits=range(len(data))).fields == {"a": "1"}


def test_preamble_that_looks_like_a_boundary_is_ignored(tmp_path: Path) -> None:
    data = body(field("a", "1"), preamble=b"--" + BOUNDARY[:-2] + b"\r\n\r\n")
    assert parse(tmp_path, data).fields == {"a": "1"}


def test_size_limit_is_413_and_removes_temp_files(tmp_path: Path) -> None:
    data = body(upload("f", "big", b"x" * 5000))
    parser = make_parser(tmp_path, max_size=4000)
    with pytest.raises(RequestEntityTooLarge) as info:
        for chunk in chunks(data, range(0, len(data), 1000)):
            parser.feed(chunk)
    assert info.value.status == 413
    assert "4000" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FormError):
        parser.feed(b"more")


def test_part_count_limit(tmp_path: Path) -> None:
    data = body(*(field(f"p{i}", "v") for i in range(4)))
    with pytest.raises(RequestEntityTooLarge, match="too many parts"):
        parse(tmp_path, data, max_parts=3)
    assert parse(tmp_path, data, max_parts=4).fields == {f"p{i}": "v" for i in range(4)}


def test_field_size_limit_names_the_field(tmp_path: Path) -> None:
    data = body(field("small", "ok"), field("huge", "x" * 101), upload("file", "f", b"y" * 500))
    with pytest.raises(RequestEntityTooLarge, match=r"'huge'.*100") as info:
        parse(tmp_path, data, max_field_size=100)
    assert info.value.status == 413
    ok = body(field("small", "ok"), upload("file", "f", b"y" * 500))
    assert parse(tmp_path, ok, max_field_size=100).files["file"]["size"] == 500


def test_fields_together_are_bounded_and_files_do_not_count(tmp_path: Path) -> None:
    fields = [field(f"f{i}", "x" * 40) for i in range(3)]
    with pytest.raises(RequestEntityTooLarge, match="more than 100 bytes") as info:
        parse(tmp_path, body(*fields), max_field_size=50, max_fields_size=100)
    assert info.value.status == 413
    assert list(tmp_path.iterdir()) == []
    ok = body(*fields[:2], upload("file", "f", b"y" * 5000))
    parser = parse(tmp_path, ok, max_field_size=50, max_fields_size=100)
    assert parser.fields == {"f0": "x" * 40, "f1": "x" * 40}
    assert parser.files["file"]["size"] == 5000


def test_error_mid_parse_removes_files_already_written(tmp_path: Path) -> None:
    data = body(upload("f", "a", b"a" * 100), field("huge", "x" * 200))
    with pytest.raises(RequestEntityTooLarge):
        parse(tmp_path, data, max_field_size=100)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"no boundary anywhere",
        body(field("a", "1"))[:-6],  # closing delimiter cut off
        b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=a\r\n\r\nunterminated",
    ],
)
def test_truncated_bodies_fail_at_close(tmp_path: Path, data: bytes) -> None:
    parser = make_parser(tmp_path)
    parser.feed(data)
    with pytest.raises(FormError) as info:
        parser.close()
    assert info.value.status == 400
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "data",
    [
        b"--" + BOUNDARY + b"junk\r\n",
        b"--" + BOUNDARY + b"\r\nNo colon here\r\n\r\nv\r\n--" + BOUNDARY + b"--",
        b"--" + BOUNDARY + b"\r\n" + b"X-Long: " + b"a" * 20000,
        b"--" + BOUNDARY + b" " * 2000,
    ],
)
def test_malformed_bodies_are_400(tmp_path: Path, data: bytes) -> None:
    parser = make_parser(tmp_path)
    with pytest.raises(FormError) as info:
        parser.feed(data)
    assert info.value.status == 400
    assert not isinstance(info.value, RequestEntityTooLarge)


def test_str_boundary_from_parse_content_type(tmp_path: Path) -> None:
    _, params = parse_content_type(f'multipart/form-data; boundary="{BOUNDARY.decode()}"')
    parser = MultipartParser(
        params["boundary"],
        max_size=-1,
        max_parts=10,
        max_field_size=100,
        spool_dir=str(tmp_path),
        charset="utf-8",
    )
    parser.feed(body(field("a", "1")))
    parser.close()
    assert parser.fields == {"a": "1"}


@pytest.mark.parametrize("boundary", [b"", b"a\r\nb", b"x" * 300, "", "\u20ac"])
def test_invalid_boundary(tmp_path: Path, boundary: bytes | str) -> None:
    with pytest.raises(FormError):
        MultipartParser(
            boundary, max_size=1, max_parts=1, max_field_size=1, spool_dir=None, charset="utf-8"
        )


def test_epilogue_is_discarded(tmp_path: Path) -> None:
    parser = make_parser(tmp_path)
    parser.feed(body(field("a", "1")))
    parser.feed(b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="b"\r\n\r\n2')
    parser.close()
    assert parser.fields == {"a": "1"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("multipart/form-data; boundary=abc", ("multipart/form-data", {"boundary": "abc"})),
        ('Multipart/Form-Data; BOUNDARY="a b;c"', ("multipart/form-data", {"boundary": "a b;c"})),
        ("text/html;charset=UTF-8", ("text/html", {"charset": "UTF-8"})),
        ("text/plain", ("text/plain", {})),
        ("", ("", {})),
        ("a/b; x; =y; z=", ("a/b", {"x": "", "z": ""})),
        ('a/b; q="unterminated', ("a/b", {"q": "unterminated"})),
        ("a/b; t*=utf-8''%E2%82%AC; t=plain", ("a/b", {"t": "\u20ac"})),
        ("a/b; t*=garbage", ("a/b", {})),
    ],
)
def test_parse_content_type(value: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_content_type(value) == expected


@given(st.text(max_size=80))
def test_parse_content_type_never_raises(value: str) -> None:
    mime, params = parse_content_type(value)
    assert mime == mime.strip().lower()
    assert all(name == name.lower() for name in params)


def test_form_error_statuses() -> None:
    assert FormError("x").status == 400
    assert FormError("x", status=415).status == 415
    assert RequestEntityTooLarge("x").status == 413
    assert isinstance(RequestEntityTooLarge("x"), ValueError)


# -- urlencoded --------------------------------------------------------------------------------


def test_urlencoded_vector_24() -> None:
    parser = UrlEncodedParser(limit=1000, charset="utf-8")
    for byte in b"a=1&a=2&b=x+y&c=%C3%A5&empty=&novalue":
        parser.feed(bytes([byte]))
    assert parser.close() == {
        "a": ["1", "2"],
        "b": "x y",
        "c": "\u00e5",
        "empty": "",
        "novalue": None,
    }


def test_urlencoded_limit_vector_25() -> None:
    parser = UrlEncodedParser(limit=5, charset="utf-8")
    parser.feed(b"a=1&b")
    with pytest.raises(RequestEntityTooLarge, match="form data size limit exceeded") as info:
        parser.feed(b"=2")
    assert info.value.status == 413


def test_urlencoded_empty_and_latin1_fallback() -> None:
    assert UrlEncodedParser(limit=10, charset="utf-8").close() == {}
    parser = UrlEncodedParser(limit=100, charset="utf-8")
    parser.feed(b"name=%E5%E4%F6")
    assert parser.close() == {"name": "\u00e5\u00e4\u00f6"}
    strict = UrlEncodedParser(limit=100, charset="utf-8", tolerant=False)
    strict.feed(b"name=%E5%E4%F6")
    with pytest.raises(UnicodeDecodeError):
        strict.close()


class _PartsApp(Application):
    def service(self) -> None:
        self.response.headers = ["Content-Type: text/plain"]
        self.response(",".join(sorted(self.request.post)))


def _post_multipart(sock: str, fields: dict[str, str]) -> tuple[str, bytes]:
    boundary = "xYzZy"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    params = {
        "REQUEST_METHOD": "POST",
        "REQUEST_URI": "/",
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
        "CONTENT_LENGTH": str(len(body)),
    }
    with FastCGIClient(sock, timeout=10) as client:
        headers, answer = client.request(params=params, body=body).split()
    return headers.get("status", "200").split()[0], answer


def test_multipart_part_and_field_limits_come_from_the_request_template(tmp_path: Path) -> None:
    app = _PartsApp()
    app.request.max_multipart_parts = 2  # the template every request copies its limits from
    app.request.max_multipart_field_size = 5
    sock = str(tmp_path / "app.sock")
    handler = ApplicationHandler(app)
    try:
        with ServerThread(handler, [sock]):
            assert _post_multipart(sock, {"a": "12345", "b": "x"}) == ("200", b"a,b")
            assert _post_multipart(sock, {"a": "1", "b": "2", "c": "3"})[0] == "413"
            assert _post_multipart(sock, {"a": "123456"})[0] == "413"
    finally:
        handler.close()


def test_urlencoded_field_count_limit() -> None:
    parser = UrlEncodedParser(limit=1000, charset="utf-8", max_fields=3)
    parser.feed(b"a=1&b=2&c=3")
    assert parser.close() == {"a": "1", "b": "2", "c": "3"}
    parser = UrlEncodedParser(limit=1000, charset="utf-8", max_fields=3)
    parser.feed(b"a=1&b=2&c=3&d")
    with pytest.raises(RequestEntityTooLarge, match="too many fields in form data: more than 3"):
        parser.close()
    unlimited = UrlEncodedParser(limit=-1, charset="utf-8")
    unlimited.feed(b"&".join(b"k%d=" % i for i in range(5000)))
    assert len(unlimited.close()) == 5000
