"""Cookie parsing (lenient, never raises) and Set-Cookie formatting (strict, RFC 6265 attributes)."""

from __future__ import annotations

import datetime
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smisk.core import cookies
from smisk.core.cookies import format_set_cookie, parse_cookies

NOW = 1_764_095_586.0  # Tue, 25 Nov 2025 18:33:06 GMT


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cookies, "_clock", lambda: NOW)


# -- parsing --------------------------------------------------------------------------------------


def test_original_cookie_vector() -> None:
    header = 'a=1; b=x+y%20z;  c="quoted"; a=2; =nok; d; e=%FF; $Version=1'
    assert parse_cookies(header, "utf-8") == {
        "a": ["1", "2"],
        "b": "x y z",
        "c": '"quoted"',
        "d": None,
        "e": "\u00ff",
        "$Version": "1",
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", {}),
        (None, {}),
        ("SID=abc", {"SID": "abc"}),
        (b"SID=abc; x=%C3%A5", {"SID": "abc", "x": "\u00e5"}),
        (";;  ; ", {}),
        ("a=b=c", {"a": "b=c"}),
        ("\tname = value ;other=1", {"name": "value", "other": "1"}),
        ("k=%E5", {"k": "\u00e5"}),
    ],
)
def test_parse_cookies(header: str | bytes | None, expected: dict[str, object]) -> None:
    assert parse_cookies(header, "utf-8") == expected


def test_parse_cookies_charsets() -> None:
    assert parse_cookies("k=%E5", "latin-1") == {"k": "\u00e5"}
    assert parse_cookies("k=%C3%A5", None) == {"k": "\u00c3\u00a5"}
    assert parse_cookies("k=%C3%A5", "no-such-charset") == {"k": "\u00e5"}
    assert parse_cookies("k=%C3%A5", "utf\x00-8") == {"k": "\u00e5"}


@given(st.text(max_size=80), st.sampled_from(["utf-8", "latin-1", None, "bogus"]))
def test_parse_never_raises(header: str, charset: str | None) -> None:
    assert isinstance(parse_cookies(header, charset), dict)


@given(st.binary(max_size=80))
def test_parse_bytes_never_raises(header: bytes) -> None:
    assert isinstance(parse_cookies(header, "utf-8"), dict)


# -- formatting -----------------------------------------------------------------------------------


def test_defaults_keep_the_documented_version() -> None:
    assert format_set_cookie("n", "v") == "n=v; Version=1"


def test_names_and_values_are_url_encoded_like_the_original() -> None:
    assert format_set_cookie("n a", "v;a l") == "n%20a=v%3Ba%20l; Version=1"
    assert format_set_cookie(b"n", b"\xff") == "n=%FF; Version=1"
    assert format_set_cookie("n", "a\r\nSet-Cookie: evil=1") == (
        "n=a%0D%0ASet-Cookie%3A%20evil%3D1; Version=1"
    )


def test_all_attributes_in_the_original_order() -> None:
    line = format_set_cookie(
        "b",
        "c",
        comment="my c",
        domain=".ex.com",
        path="/a b/c",
        secure=True,
        version=2,
        max_age=100,
        http_only=True,
        same_site="lax",
    )
    assert line == (
        "b=c; Version=2; Comment=my%20c; Domain=.ex.com; Path=/a b/c; "
        "Max-Age=100; Expires=Tue, 25 Nov 2025 18:34:46 GMT; Secure; HttpOnly; SameSite=Lax"
    )


def test_expires_is_a_correct_rfc1123_date() -> None:
    line = format_set_cookie("n", "v", max_age=3600)
    expires = line.split("Expires=")[1].split(";")[0]
    assert expires.endswith(" GMT")
    assert parsedate_to_datetime(expires).timestamp() == NOW + 3600


def test_max_age_zero_expires_in_the_past() -> None:
    line = format_set_cookie("n", "", max_age=0)
    assert line == "n=; Version=1; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"


def test_no_max_age_means_a_session_cookie() -> None:
    for max_age in (-1, -5, None):
        assert "Max-Age" not in format_set_cookie("n", "v", max_age=max_age)
        assert "Expires" not in format_set_cookie("n", "v", max_age=max_age)
        assert "Discard" not in format_set_cookie("n", "v", max_age=max_age)


@pytest.mark.parametrize(
    ("expires", "text"),
    [
        (datetime.datetime(2030, 1, 2, 3, 4, 5), "Wed, 02 Jan 2030 03:04:05 GMT"),
        (
            datetime.datetime(
                2030, 1, 2, 4, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
            ),
            "Wed, 02 Jan 2030 03:04:05 GMT",
        ),
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("Wed, 02 Jan 2030 03:04:05 GMT", "Wed, 02 Jan 2030 03:04:05 GMT"),
    ],
)
def test_explicit_expires(expires: datetime.datetime | float | str, text: str) -> None:
    assert format_set_cookie("n", "v", expires=expires, version=None) == (f"n=v; Expires={text}")
    both = format_set_cookie("n", "v", max_age=10, expires=expires)
    assert both.count("Expires=") == 1
    assert "Max-Age=10" in both


def test_version_can_be_left_out() -> None:
    assert format_set_cookie("n", "v", version=None, path="/") == "n=v; Path=/"


@pytest.mark.parametrize("same_site", ["Strict", "strict", "LAX", "None"])
def test_same_site_values(same_site: str) -> None:
    line = format_set_cookie("n", "v", secure=True, same_site=same_site)
    assert line.endswith("; Secure; SameSite=" + same_site.capitalize())


def test_same_site_errors() -> None:
    with pytest.raises(ValueError, match="Strict"):
        format_set_cookie("n", "v", same_site="sometimes")
    with pytest.raises(ValueError, match="secure"):
        format_set_cookie("n", "v", same_site="None")


@pytest.mark.parametrize("attribute", ["domain", "path"])
@pytest.mark.parametrize("bad", ["/a\r\nX-Evil: 1", "/a;b", "/a\nb", "/a\x00", "/\x7f"])
def test_attribute_injection_is_refused(attribute: str, bad: str) -> None:
    with pytest.raises(ValueError, match=f"cookie {attribute} must not contain"):
        format_set_cookie("n", "v", **{attribute: bad})  # type: ignore[arg-type]


def test_bad_types_and_empty_names() -> None:
    with pytest.raises(ValueError, match="name must not be empty"):
        format_set_cookie("", "v")
    with pytest.raises(TypeError, match="cookie value must be a str"):
        format_set_cookie("n", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cookie path must be a str"):
        format_set_cookie("n", "v", path=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expires"):
        format_set_cookie("n", "v", expires=[1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cookie expires must not contain"):
        format_set_cookie("n", "v", expires="x\r\ny")


@given(name=st.text(min_size=1, max_size=20), value=st.text(max_size=40))
def test_formatted_cookies_parse_back(name: str, value: str) -> None:
    line = format_set_cookie(name, value, path="/", http_only=True)
    assert "\r" not in line and "\n" not in line
    pair = line.removeprefix("").split("; ")[0]
    assert parse_cookies(pair, "utf-8") == {name: value}  # everything is encoded, so exact
