"""URL: the original's test vectors (reference section 16), parsing rules and to_s overrides."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smisk.core.url import URL

FIELDS = ("scheme", "user", "password", "host", "port", "path", "query", "fragment")


def fields(url: URL) -> tuple[object, ...]:
    return tuple(getattr(url, name) for name in FIELDS)


# -- encode / escape / decode (test_encode_decode, test_clean_strings) -------------------------

RAW = "http://abc.se:12/mos/j\u00e4ger/grek land/hej.html?mos=japp&\u00f6land=nej#ge-mig/d\u00e5"
ESCAPED = (
    "http%3A//abc.se%3A12/mos/j%C3%A4ger/grek%20land/hej.html?mos=japp&%C3%B6land=nej"
    "%23ge-mig/d%C3%A5"
)
ENCODED = (
    "http%3A%2F%2Fabc.se%3A12%2Fmos%2Fj%C3%A4ger%2Fgrek%20land%2Fhej.html%3Fmos%3Djapp"
    "%26%C3%B6land%3Dnej%23ge-mig%2Fd%C3%A5"
)


def test_encode_escape_decode_vectors() -> None:
    assert URL.escape(RAW) == ESCAPED
    assert URL.encode(RAW) == ENCODED
    assert URL.decode(ESCAPED) == RAW
    assert URL.decode(ENCODED) == RAW
    assert URL.unescape(ESCAPED) == URL.decode(ESCAPED)
    assert URL.decode("foo%2Bbar@internets.com") == "foo+bar@internets.com"


def test_string_types_are_kept() -> None:
    assert type(URL.encode("foo+bar@internets.com")) is str
    assert type(URL.encode(b"foo+bar@internets.com")) is bytes
    assert type(URL.escape("foo+bar@internets.com")) is str
    assert type(URL.escape(b"foo+bar@internets.com")) is bytes
    assert type(URL.decode("foo%2Bbar@internets.com")) is str
    assert type(URL.decode(b"foo%2Bbar@internets.com")) is bytes
    assert URL.encode(b"a b") == b"a%20b"


def test_clean_strings_are_returned_as_the_same_object() -> None:
    s1 = "".join(["hello", "/john"])
    s2 = "".join(["hello", "_john"])
    assert URL.escape(s1) is s1
    assert URL.encode(s2) is s2


def test_codec_functions_refuse_non_strings() -> None:
    with pytest.raises(TypeError):
        URL.encode(5)  # type: ignore[type-var]


def test_decode_plus_rule_is_one_rule() -> None:
    # The original turned '+' into a space only when a %XX was also decoded; '+' is now kept.
    assert URL.decode("a+b") == "a+b"
    assert URL.decode("a+b%20c") == "a+b c"


# -- parsing (test_parse) ----------------------------------------------------------------------

PARSE_VECTORS = [
    (
        "http://john:secret@www.mos.tld/some/path.ext?arg1=245&arg2=hej%20du#chapter5",
        (
            "http",
            "john",
            "secret",
            "www.mos.tld",
            0,
            "/some/path.ext",
            "arg1=245&arg2=hej%20du",
            "chapter5",
        ),
    ),
    (
        "https://john@www.mos.tld/some/path.ext?arg1=245&arg2=hej%20du#chapter5",
        (
            "https",
            "john",
            None,
            "www.mos.tld",
            0,
            "/some/path.ext",
            "arg1=245&arg2=hej%20du",
            "chapter5",
        ),
    ),
    (
        "http://www.mos.tld/some/path.ext?arg1=245&arg2=hej%20du-chapter5",
        (
            "http",
            None,
            None,
            "www.mos.tld",
            0,
            "/some/path.ext",
            "arg1=245&arg2=hej%20du-chapter5",
            None,
        ),
    ),
    (
        "http://www.mos.tld/some/path.ext?arg1=245&arg2=hej%20du?chapter5",
        (
            "http",
            None,
            None,
            "www.mos.tld",
            0,
            "/some/path.ext",
            "arg1=245&arg2=hej%20du?chapter5",
            None,
        ),
    ),
    (
        "http://www.mos.tld/some/path.ext?",
        ("http", None, None, "www.mos.tld", 0, "/some/path.ext", "", None),
    ),
    (
        "http://www.mos.tld/some/path.ext#arg1=245&arg2=hej%20du-chapter5",
        (
            "http",
            None,
            None,
            "www.mos.tld",
            0,
            "/some/path.ext",
            None,
            "arg1=245&arg2=hej%20du-chapter5",
        ),
    ),
    (
        "http://www.mos.tld/some/path.ext#arg1=245&arg2=hej%20du?chapter5",
        (
            "http",
            None,
            None,
            "www.mos.tld",
            0,
            "/some/path.ext",
            None,
            "arg1=245&arg2=hej%20du?chapter5",
        ),
    ),
    (
        "http://www.mos.tld/some/path.ext#",
        ("http", None, None, "www.mos.tld", 0, "/some/path.ext", None, ""),
    ),
    # Observed on the rebuilt original (reference 10.2 and 16.2).
    ("localhost:8080", (None, None, None, "localhost", 8080, None, None, None)),
    ("localhost", (None, None, None, "localhost", 0, None, None, None)),
    ("HTTP://Host.Name/x", ("http", None, None, "Host.Name", 0, "/x", None, None)),
    ("http://h//double", ("http", None, None, "h", 0, "//double", None, None)),
    ("http://h/p/x:y@z", ("http", None, None, "h", 0, "/p/x:y@z", None, None)),
    ("ftp://u@h:21/p;type=a", ("ftp", "u", None, "h", 21, "/p;type=a", None, None)),
    ("/just/a/path?q=1#f", (None, None, None, None, 0, "/just/a/path", "q=1", "f")),
    ("http://h/p?a=1?b#c#d", ("http", None, None, "h", 0, "/p", "a=1?b", "c#d")),
    ("http://h/p#f?x", ("http", None, None, "h", 0, "/p", None, "f?x")),
    ("http://h:99999/", ("http", None, None, "h", 99999, "/", None, None)),
    ("http://h:abc/", ("http", None, None, "h", 0, "/", None, None)),
    ("http://h:-5/", ("http", None, None, "h", 0, "/", None, None)),
    ("http://h:8080x/", ("http", None, None, "h", 8080, "/", None, None)),
    ("mailto:foo@bar.com", (None, "mailto", "foo", "bar.com", 0, None, None, None)),
    ("", (None, None, None, None, 0, None, None, None)),
    # Defects of the original, fixed (reference 16.2 #9 and #10).
    ("http://host?x=1", ("http", None, None, "host", 0, None, "x=1", None)),
    ("http://host#top", ("http", None, None, "host", 0, None, None, "top")),
    ("http://u:p@host:81?x", ("http", "u", "p", "host", 81, None, "x", None)),
    ("localhost:8080?x=1", (None, None, None, "localhost", 8080, None, "x=1", None)),
    ("http://[::1]:8080/p", ("http", None, None, "[::1]", 8080, "/p", None, None)),
    ("http://u@[fe80::1%25eth0]/", ("http", "u", None, "[fe80::1%25eth0]", 0, "/", None, None)),
    ("[::1]:5000", (None, None, None, "[::1]", 5000, None, None, None)),
    ("foo/bar", (None, None, None, None, 0, "foo/bar", None, None)),
    ("www.example.com/path?q", (None, None, None, None, 0, "www.example.com/path", "q", None)),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_VECTORS)
def test_parse(text: str, expected: tuple[object, ...]) -> None:
    assert fields(URL(text)) == expected


@pytest.mark.parametrize(
    "text", ["http://a@b@c/", "http://a:b:c/", "http://h:1:2/", "http://u@h:1@x/", "http://[::1/"]
)
def test_impossible_input_gives_an_empty_url(text: str) -> None:
    assert fields(URL(text)) == (None, None, None, None, 0, None, None, None)
    assert str(URL(text)) == ""


def test_constructor_forms() -> None:
    assert fields(URL()) == (None, None, None, None, 0, None, None, None)
    assert fields(URL(None)) == fields(URL())
    assert URL(5).host == "5"
    assert URL(b"http://h/\xc3\xa5").path == "/\u00e5"
    assert URL(b"http://h/\xe5").path == "/\u00e5"


def test_copy_is_shallow_and_independent() -> None:
    original = URL("http://john:secret@host:81/p?q#f")
    copy = URL(original)
    assert copy is not original
    assert fields(copy) == fields(original)
    copy.host = "other"
    assert original.host == "host"

    class MyURL(URL):
        pass

    sub = MyURL(original)
    assert isinstance(sub, MyURL)
    assert fields(URL(sub)) == fields(original)


def test_attributes_are_writable() -> None:
    url = URL()
    url.scheme, url.host, url.port, url.path = "https", "example.com", 8443, "/x"
    assert str(url) == "https://example.com:8443/x"


def test_uri_property() -> None:
    assert URL("http://h/p?q=1#f").uri == "/p?q=1#f"
    assert URL("http://h/p?#").uri == "/p#"
    assert URL("http://h").uri is None
    assert URL("http://h?x=1").uri == "?x=1"


def test_repr_hides_the_password() -> None:
    text = repr(URL("http://john:secret@h:80/p"))
    assert "secret" not in text
    assert text == "<URL 'http://john@h:80/p'>"


# -- to_s ----------------------------------------------------------------------------------------

U1_RAW = "http://john:secret@fisk.tld:1983/some/path.ext?arg1=245&arg2=hej%20du#chapter5"
Q = "?arg1=245&arg2=hej%20du"
F = "#chapter5"


def test_to_s_1() -> None:
    u1 = URL(U1_RAW)
    assert u1.to_s() == str(u1) == u1.to_str() == U1_RAW


@pytest.mark.parametrize(
    ("raw", "kwargs", "expected"),
    [
        ("http://fisk.tld:1983/some/path", {"port": 0}, "http://fisk.tld/some/path"),
        ("http://fisk.tld:1983/some/path", {"port80": 0}, "http://fisk.tld:1983/some/path"),
        ("http://fisk.tld:1983/some/path", {"port": 0, "port80": 1}, "http://fisk.tld/some/path"),
        ("http://fisk.tld:80/some/path", {"port": 0}, "http://fisk.tld/some/path"),
        ("http://fisk.tld:80/some/path", {"port80": 0}, "http://fisk.tld/some/path"),
        ("http://fisk.tld:80/some/path", {"port": 0, "port80": 1}, "http://fisk.tld/some/path"),
        # reference 16.2 #7 and #8
        ("http://h:80/p", {}, "http://h/p"),
        ("http://h:80/p", {"port80": True}, "http://h:80/p"),
        ("http://h:5/p", {"port": 80}, "http://h/p"),
        ("http://h:5/p", {"port": 80, "port80": True}, "http://h:80/p"),
        ("https://h:443/p", {}, "https://h:443/p"),
        ("http://h:5/p", {"port": 1}, "http://h:5/p"),
        ("http://h:5/p", {"port": "8080"}, "http://h/p"),
    ],
)
def test_to_s_2_port(raw: str, kwargs: dict[str, object], expected: str) -> None:
    assert URL(raw).to_s(**kwargs) == expected


TO_S_3 = [
    ("0,1,1,1,1,1,1,1", "john:secret@fisk.tld:1983/some/path.ext" + Q + F),
    ("1,0,1,1,1,1,1,1", "http://fisk.tld:1983/some/path.ext" + Q + F),
    ("1,1,0,1,1,1,1,1", "http://john@fisk.tld:1983/some/path.ext" + Q + F),
    ("1,1,1,0,1,1,1,1", "http://john:secret@:1983/some/path.ext" + Q + F),
    ("1,1,1,1,0,1,1,1", "http://john:secret@fisk.tld/some/path.ext" + Q + F),
    ("1,1,1,1,1,0,1,1", "http://john:secret@fisk.tld:1983" + Q + F),
    ("1,1,1,1,1,1,0,1", "http://john:secret@fisk.tld:1983/some/path.ext" + F),
    ("1,1,1,1,1,1,1,0", "http://john:secret@fisk.tld:1983/some/path.ext" + Q),
    ("0,0,1,1,1,1,1,1", "fisk.tld:1983/some/path.ext" + Q + F),
    ("0,1,0,1,1,1,1,1", "john@fisk.tld:1983/some/path.ext" + Q + F),
    ("0,1,1,0,1,1,1,1", "john:secret@:1983/some/path.ext" + Q + F),
    ("0,1,1,1,0,1,1,1", "john:secret@fisk.tld/some/path.ext" + Q + F),
    ("0,1,1,1,1,0,1,1", "john:secret@fisk.tld:1983" + Q + F),
    ("0,1,1,1,1,1,0,1", "john:secret@fisk.tld:1983/some/path.ext" + F),
    ("0,1,1,1,1,1,1,0", "john:secret@fisk.tld:1983/some/path.ext" + Q),
    ("1,0,0,1,1,1,1,1", "http://fisk.tld:1983/some/path.ext" + Q + F),
    ("1,0,1,0,1,1,1,1", "http://:1983/some/path.ext" + Q + F),
    ("1,0,1,1,0,1,1,1", "http://fisk.tld/some/path.ext" + Q + F),
    ("1,0,1,1,1,0,1,1", "http://fisk.tld:1983" + Q + F),
    ("1,0,1,1,1,1,0,1", "http://fisk.tld:1983/some/path.ext" + F),
    ("1,0,1,1,1,1,1,0", "http://fisk.tld:1983/some/path.ext" + Q),
    ("1,1,0,0,1,1,1,1", "http://john@:1983/some/path.ext" + Q + F),
    ("1,1,0,1,0,1,1,1", "http://john@fisk.tld/some/path.ext" + Q + F),
    ("1,1,0,1,1,0,1,1", "http://john@fisk.tld:1983" + Q + F),
    ("1,1,0,1,1,1,0,1", "http://john@fisk.tld:1983/some/path.ext" + F),
    ("1,1,0,1,1,1,1,0", "http://john@fisk.tld:1983/some/path.ext" + Q),
    ("1,1,1,0,0,1,1,1", "http://john:secret@/some/path.ext" + Q + F),
    ("1,1,1,0,1,0,1,1", "http://john:secret@:1983" + Q + F),
    ("1,1,1,0,1,1,0,1", "http://john:secret@:1983/some/path.ext" + F),
    ("1,1,1,0,1,1,1,0", "http://john:secret@:1983/some/path.ext" + Q),
    ("1,1,1,1,0,0,1,1", "http://john:secret@fisk.tld" + Q + F),
    ("1,1,1,1,0,1,0,1", "http://john:secret@fisk.tld/some/path.ext" + F),
    ("1,1,1,1,0,1,1,0", "http://john:secret@fisk.tld/some/path.ext" + Q),
    ("1,1,1,1,1,0,0,1", "http://john:secret@fisk.tld:1983" + F),
    ("1,1,1,1,1,0,1,0", "http://john:secret@fisk.tld:1983" + Q),
    ("1,1,1,1,1,1,0,0", "http://john:secret@fisk.tld:1983/some/path.ext"),
]


@pytest.mark.parametrize(("flags", "expected"), TO_S_3)
def test_to_s_3(flags: str, expected: str) -> None:
    names = ("scheme", "user", "password", "host", "port", "path", "query", "fragment")
    kwargs = dict(zip(names, (int(f) for f in flags.split(",")), strict=True))
    assert URL(U1_RAW).to_s(**kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"scheme": "ftp"}, "ftp://john:secret@fisk.tld:1983/some/path.ext" + Q + F),
        ({"user": "bob"}, "http://bob:secret@fisk.tld:1983/some/path.ext" + Q + F),
        ({"password": "bob"}, "http://john:bob@fisk.tld:1983/some/path.ext" + Q + F),
        ({"host": "bob"}, "http://john:secret@bob:1983/some/path.ext" + Q + F),
        ({"port": 123}, "http://john:secret@fisk.tld:123/some/path.ext" + Q + F),
        ({"user": 0, "path": "/internets"}, "http://fisk.tld:1983/internets" + Q + F),
        (
            {"query": "grekisk_afton=yes"},
            "http://john:secret@fisk.tld:1983/some/path.ext?grekisk_afton=yes" + F,
        ),
        ({"fragment": "m0"}, "http://john:secret@fisk.tld:1983/some/path.ext" + Q + "#m0"),
        ({"host": "", "path": None}, "http://john:secret@:1983" + Q + F),
        ({"password": False}, "http://john@fisk.tld:1983/some/path.ext" + Q + F),
    ],
)
def test_to_s_4_overrides(kwargs: dict[str, object], expected: str) -> None:
    assert URL(U1_RAW).to_s(**kwargs) == expected


def test_overrides_apply_where_nothing_is_stored() -> None:
    url = URL("http://h/p")
    assert url.to_s(user="u", password="pw") == "http://u:pw@h/p"
    assert url.to_s(password="pw") == "http://h/p"  # no user, no password
    assert url.to_s(query="a=1", fragment="") == "http://h/p?a=1"


def test_empty_fragment_round_trips_and_empty_query_does_not_print() -> None:
    assert str(URL("http://h/p#")) == "http://h/p#"
    assert str(URL("http://h/p?")) == "http://h/p"


def test_positional_arguments_are_honoured() -> None:
    # The original ignored positional arguments unless a keyword was also given.
    u1 = URL(U1_RAW)
    assert u1.to_s(False, False) == "fisk.tld:1983/some/path.ext" + Q + F
    assert u1.to_s(True, True, False, True, False) == "http://john@fisk.tld/some/path.ext" + Q + F


def test_documentation_examples() -> None:
    assert URL("http://host.name:1234/some/path").to_s() == "http://host.name:1234/some/path"
    assert (
        URL("http://host.name:1234/some/path").to_s(host="another.host")
        == "http://another.host:1234/some/path"
    )
    url = URL("https://host:443/some/path")
    assert url.to_s(port=url.port not in (80, 443)) == "https://host/some/path"
    url = URL("https://host:1443/some/path")
    assert url.to_s(port=url.port not in (80, 443)) == "https://host:1443/some/path"


# -- decompose_query ---------------------------------------------------------------------------


def test_decompose_query_vectors() -> None:
    q = URL.decompose_query(
        URL("http://a/?email=foo%2Bbar@internets.com&&stale_key&&mos=abc&mos=123&&&").query
    )
    assert q["email"] == "foo+bar@internets.com"
    assert q["stale_key"] is None
    assert q["mos"] == ["abc", "123"]
    assert set(q) <= {"email", "stale_key", "mos"}
    assert URL.decompose_query("name=%E5%E4%F6", charset="latin_1", tolerant=False) == {
        "name": "\u00e5\u00e4\u00f6"
    }
    assert URL.decompose_query("name=%C3%A5%C3%A4%C3%B6%EF%A3%BF", charset="utf-8") == {
        "name": "\u00e5\u00e4\u00f6\uf8ff"
    }
    with pytest.raises(UnicodeDecodeError):
        URL.decompose_query("name=%E5%E4%F6", charset="utf-8", tolerant=False)
    assert URL.decompose_query("name=%E5%E4%F6", charset="utf-8") == {"name": "\u00e5\u00e4\u00f6"}


def test_decompose_query_observed_vectors() -> None:
    assert URL.decompose_query("a=1&a=2&a=3&b&c=&d=x%20y+z&&e=%C3%A5") == {
        "a": ["1", "2", "3"],
        "b": None,
        "c": "",
        "d": "x y z",
        "e": "\u00e5",
    }
    assert URL.decompose_query("a=1;b=2") == {"a": "1;b=2"}
    assert URL.decompose_query("%61%62=1&a%3Db=2") == {"ab": "1", "a=b": "2"}
    assert URL.decompose_query("n=%E5", charset=None) == {"n": "\u00e5"}
    assert URL.decompose_query("name=Jack%20%C3%B6l&age=53") == {
        "age": "53",
        "name": "Jack \u00f6l",
    }
    assert URL.decompose_query("a[]=1&a[]=2&x[y]=3") == {"a[]": ["1", "2"], "x[y]": "3"}
    assert URL.decompose_query("bad=%FF;semi=1") == {"bad": "\u00ff;semi=1"}
    assert URL.decompose_query(b"x=1") == {"x": "1"}
    assert URL.decompose_query(bytearray(b"x=1")) == {"x": "1"}
    assert URL.decompose_query(5) == {"5": None}


# -- properties ----------------------------------------------------------------------------------


@given(st.text(max_size=60))
def test_parsing_never_raises(text: str) -> None:
    url = URL(text)
    assert isinstance(str(url), str)
    assert url.scheme is None or url.scheme == url.scheme.lower()
    assert url.port >= 0


@given(st.binary(max_size=60))
def test_parsing_bytes_never_raises(data: bytes) -> None:
    assert isinstance(str(URL(data)), str)


_UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%"
_word = st.text(alphabet=_UNRESERVED, min_size=1, max_size=12)


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[object, ...]:
    scheme = draw(st.from_regex(r"[a-z][a-z0-9+.\-]{0,6}", fullmatch=True))
    user = draw(st.none() | _word)
    password = draw(st.none() | _word) if user else None
    host = draw(st.from_regex(r"[A-Za-z0-9\-.]{1,20}|\[[0-9a-f:]{2,20}\]", fullmatch=True))
    port = draw(st.integers(min_value=0, max_value=65535).filter(lambda p: p != 80))
    path = draw(st.none() | st.text(alphabet=_UNRESERVED + "/:@", max_size=15).map("/{}".format))
    query = draw(st.none() | st.text(alphabet=_UNRESERVED + "/:@?", min_size=1, max_size=15))
    fragment = draw(st.none() | st.text(alphabet=_UNRESERVED + "/:@?#", max_size=15))
    return (scheme, user, password, host, port, path, query, fragment)


@given(well_formed())
def test_str_round_trips_on_well_formed_urls(parts: tuple[object, ...]) -> None:
    url = URL()
    for name, value in zip(FIELDS, parts, strict=True):
        setattr(url, name, value)
    again = URL(str(url))
    assert fields(again) == parts
    assert str(again) == str(url)
