"""decompose_query: sections 6.13 and 10.7, the vectors of 16.1 and 16.2, and cookie mode."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

QUERY_VECTORS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "email=foo%2Bbar@internets.com&&stale_key&&mos=abc&mos=123&&&",
        {},
        {"email": "foo+bar@internets.com", "stale_key": None, "mos": ["abc", "123"]},
    ),
    ("name=%E5%E4%F6", {"charset": "latin_1", "tolerant": False}, {"name": "\xe5\xe4\xf6"}),
    ("name=%C3%A5%C3%A4%C3%B6%EF%A3%BF", {"charset": "utf-8"}, {"name": "\xe5\xe4\xf6\uf8ff"}),
    ("name=%E5%E4%F6", {"charset": "utf-8"}, {"name": "\xe5\xe4\xf6"}),  # latin-1 fallback
    ("name=Jack%20%C3%B6l&age=53", {}, {"name": "Jack \xf6l", "age": "53"}),
    (
        "a=1&a=2&a=3&b&c=&d=x%20y+z&&e=%C3%A5",
        {},
        {"a": ["1", "2", "3"], "b": None, "c": "", "d": "x y z", "e": "\xe5"},
    ),
    ("a=1;b=2", {}, {"a": "1;b=2"}),
    ("bad=%FF;semi=1", {}, {"bad": "\xff;semi=1"}),
    ("%61%62=1&a%3Db=2", {}, {"ab": "1", "a=b": "2"}),
    ("n=%E5", {"charset": None}, {"n": "\xe5"}),
    (
        "a=1&a=2&b=x+y&c=%C3%A5&empty=&novalue",
        {},
        {"a": ["1", "2"], "b": "x y", "c": "\xe5", "empty": "", "novalue": None},
    ),
    ("a[]=1&a[]=2&x[y]=3", {}, {"a[]": ["1", "2"], "x[y]": "3"}),
    ("=v", {}, {"": "v"}),
    ("k=a=b", {}, {"k": "a=b"}),
    ("a&a=1&a", {}, {"a": [None, "1", None]}),
    ("%FF=1", {}, {"\ufffd": "1"}),  # keys: errors="replace"
    ("a%00b=%00", {}, {"a\x00b": "\x00"}),  # NUL kept, not a terminator
    ("p=%2B+%20", {}, {"p": "+  "}),
    ("x=%zz%4", {}, {"x": "%zz%4"}),
    ("\xe5=\xf6", {}, {"\xe5": "\xf6"}),
    ("", {}, {}),
    ("&&&", {}, {}),
    ("a=1,b=2", {"separator": ","}, {"a": "1", "b": "2"}),
    ("k=%E5", {"charset": "ascii"}, {"k": "\xe5"}),
    ("k=%E5&%E5=v", {"charset": "cp1252"}, {"k": "\xe5", "\xe5": "v"}),
]


@pytest.mark.parametrize(("query", "options", "expected"), QUERY_VECTORS)
def test_query_vectors(
    codec: ModuleType, query: str, options: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert codec.decompose_query(query, **options) == expected
    assert codec.decompose_query(query.encode(), **options) == expected


def test_keys_keep_their_first_order(codec: ModuleType) -> None:
    assert list(codec.decompose_query("b=1&a=2&b=3&c")) == ["b", "a", "c"]


def test_not_tolerant_raises(codec: ModuleType) -> None:
    with pytest.raises(UnicodeDecodeError):
        codec.decompose_query("name=%E5%E4%F6", charset="utf-8", tolerant=False)
    # Keys are never strict.
    assert codec.decompose_query("%E5", tolerant=False) == {"\ufffd": None}


def test_positional_options(codec: ModuleType) -> None:
    assert codec.decompose_query("a=%E5", None, False, "&") == {"a": "\xe5"}
    assert codec.decompose_query(s="a=1") == {"a": "1"}


COOKIE_VECTORS: list[tuple[str, dict[str, Any]]] = [
    (
        "SID=abc; theme=dark;  lang = sv ;=x; ;flag",
        {"SID": "abc", "theme": "dark", "lang": "sv", "flag": None},
    ),
    ("a=1;a=2", {"a": ["1", "2"]}),
    ("\tt=\t1\t", {"t": "1"}),
    ("q=a+b%3B", {"q": "a b;"}),
    ("   ;  ; ", {}),
    ("k=a&b=c", {"k": "a&b=c"}),
]


@pytest.mark.parametrize(("header", "expected"), COOKIE_VECTORS)
def test_cookie_mode(codec: ModuleType, header: str, expected: dict[str, Any]) -> None:
    assert codec.decompose_query(header, separator=";") == expected


def test_unknown_charset(codec: ModuleType) -> None:
    with pytest.raises(LookupError, match=r"^unknown encoding: bogus$"):
        codec.decompose_query("a=1", charset="bogus")
    assert codec.decompose_query("", charset="bogus") == {}


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"charset": 5}, TypeError, "charset must be a str or None"),
        ({"charset": "utf-8\x00"}, ValueError, "embedded null character"),
        ({"charset": "\ud800"}, UnicodeEncodeError, None),
        ({"separator": "&&"}, ValueError, "separator must be a single ASCII character"),
        ({"separator": ""}, ValueError, "separator must be a single ASCII character"),
        ({"separator": "\xe5"}, ValueError, "separator must be a single ASCII character"),
        ({"separator": b"&"}, TypeError, "separator must be a str"),
    ],
)
def test_bad_options(
    codec: ModuleType, options: dict[str, Any], error: type[Exception], message: str | None
) -> None:
    with pytest.raises(error) as info:
        codec.decompose_query("a=1", **options)
    if message is not None:
        assert str(info.value) == message


@pytest.mark.parametrize("value", [None, 1, bytearray(b"a=1"), ["a=1"]])
def test_non_strings_are_rejected(codec: ModuleType, value: object) -> None:
    with pytest.raises(TypeError, match=r"^first argument must be a string$"):
        codec.decompose_query(value)
