"""url_encode / url_escape / url_decode: section 10.6 and the original tests of section 16.1."""

from __future__ import annotations

from types import ModuleType

import pytest

RAW = "http://abc.se:12/mos/j\xe4ger/grek land/hej.html?mos=japp&\xf6land=nej#ge-mig/d\xe5"
ESCAPED = (
    "http%3A//abc.se%3A12/mos/j%C3%A4ger/grek%20land/hej.html?mos=japp&%C3%B6land=nej"
    "%23ge-mig/d%C3%A5"
)
ENCODED = (
    "http%3A%2F%2Fabc.se%3A12%2Fmos%2Fj%C3%A4ger%2Fgrek%20land%2Fhej.html%3Fmos%3Djapp"
    "%26%C3%B6land%3Dnej%23ge-mig%2Fd%C3%A5"
)

# Section 10.6: what each function percent-encodes besides controls, space, DEL and >= 0x80.
ESCAPE_SET = set(b'"#%:<>@[\\]^`{|}') | set(range(0x21)) | set(range(0x7F, 0x100))
ENCODE_SET = ESCAPE_SET | set(b"$&+,/;=?")


@pytest.mark.parametrize("kind", [str, bytes])
def test_original_vectors(codec: ModuleType, kind: type) -> None:
    def conv(text: str) -> str | bytes:
        return text if kind is str else text.encode()

    assert codec.url_escape(conv(RAW)) == conv(ESCAPED)
    assert codec.url_encode(conv(RAW)) == conv(ENCODED)
    assert codec.url_decode(conv(ESCAPED)) == conv(RAW)
    assert codec.url_decode(conv(ENCODED)) == conv(RAW)
    assert codec.url_unescape(conv(ESCAPED)) == codec.url_decode(conv(ESCAPED))
    assert codec.url_decode(conv("foo%2Bbar@internets.com")) == conv("foo+bar@internets.com")


@pytest.mark.parametrize("name", ["url_encode", "url_escape", "url_decode", "url_unescape"])
@pytest.mark.parametrize("value", ["foo+bar@internets.com", "foo%2Bbar", "", "\xe5 %C3%A5"])
def test_output_type_follows_input(codec: ModuleType, name: str, value: str) -> None:
    function = getattr(codec, name)
    assert type(function(value)) is str
    assert type(function(value.encode())) is bytes


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("url_escape", "hello/john"),
        ("url_encode", "hello_john"),
        ("url_encode", "AZaz09!'()*-._~"),
        ("url_escape", "a+b&c=d;e?f$g,h"),
        ("url_decode", "no escapes+here"),
        ("url_decode", "100%"),
        ("url_decode", "%zz%4%"),
        ("url_decode", "\ud800 surrogate without percent"),
        ("url_encode", ""),
        ("url_escape", ""),
        ("url_decode", ""),
    ],
)
def test_unchanged_input_is_the_same_object(codec: ModuleType, name: str, value: str) -> None:
    function = getattr(codec, name)
    assert function(value) is value
    if value.isascii():
        raw = value.encode()
        assert function(raw) is raw


@pytest.mark.parametrize("byte", range(256))
def test_escape_and_encode_sets(codec: ModuleType, byte: int) -> None:
    data = bytes((byte,))
    quoted = b"%%%02X" % byte
    assert codec.url_escape(data) == (quoted if byte in ESCAPE_SET else data)
    assert codec.url_encode(data) == (quoted if byte in ENCODE_SET else data)
    assert codec.url_decode(quoted) == data
    assert codec.url_decode(quoted.lower()) == data


DECODE_VECTORS = [
    ("a+b", "a+b"),  # '+' is literal here; decompose_query() turns it into a space
    ("a+b%20c", "a+b c"),
    ("%%41", "%A"),
    ("%4%41", "%4A"),
    ("%4a%4A", "JJ"),
    ("%", "%"),
    ("%4", "%4"),
    ("x%g0", "x%g0"),
    ("%00", "\x00"),
    ("a%C3%A5+", "a\xe5+"),
    ("%FF", "\ufffd"),  # not UTF-8: replaced, never raised
    ("\xe5%20", "\xe5 "),
]


@pytest.mark.parametrize(("value", "expected"), DECODE_VECTORS)
def test_decode_vectors(codec: ModuleType, value: str, expected: str) -> None:
    assert codec.url_decode(value) == expected


def test_decode_bytes_keeps_raw_bytes(codec: ModuleType) -> None:
    assert codec.url_decode(b"%FF%fe%00") == b"\xff\xfe\x00"


ENCODE_FIXES = [
    # The original returned these unchanged (NUL byte before the unsafe character; non-ASCII str).
    (b"a\x00b c", b"a%00b%20c"),
    ("\xe5", "%C3%A5"),
    ("\u20ac/\U0001d11e", "%E2%82%AC%2F%F0%9D%84%9E"),
    ("\x00", "%00"),
]


@pytest.mark.parametrize(("value", "expected"), ENCODE_FIXES)
def test_encode_fixes_the_original_bugs(codec: ModuleType, value: object, expected: object) -> None:
    assert codec.url_encode(value) == expected


def test_uppercase_hex(codec: ModuleType) -> None:
    assert codec.url_encode(b"\xff\n") == b"%FF%0A"


@pytest.mark.parametrize("name", ["url_encode", "url_escape", "url_decode", "url_unescape"])
@pytest.mark.parametrize("value", [None, 1, bytearray(b"a"), memoryview(b"a"), ["a"]])
def test_non_strings_are_rejected(codec: ModuleType, name: str, value: object) -> None:
    with pytest.raises(TypeError, match=r"^first argument must be a string$"):
        getattr(codec, name)(value)


@pytest.mark.parametrize("name", ["url_encode", "url_escape", "url_decode"])
def test_lone_surrogates_cannot_be_encoded(codec: ModuleType, name: str) -> None:
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        getattr(codec, name)("\ud800 %41")


def test_round_trips(codec: ModuleType) -> None:
    for value in [RAW, "a+b c", "%+%2B", "\x00\xff\u20ac"]:
        assert codec.url_decode(codec.url_encode(value)) == value
        assert codec.url_decode(codec.url_escape(value)) == value
