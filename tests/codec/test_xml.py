"""xml_escape / xml_unescape: section 11 and the original tests of section 16.1."""

from __future__ import annotations

from types import ModuleType

import pytest

PLAIN = 'Some <document> with strings & characters which should be "escaped"'
ESCAPED = "Some &lt;document&gt; with strings &amp; characters which should be &quot;escaped&quot;"

ESCAPE_VECTORS = [
    (PLAIN, ESCAPED),
    ('foo<bar>"baz"&', "foo&lt;bar&gt;&quot;baz&quot;&amp;"),
    ("&lt;", "&amp;lt;"),  # already escaped text is escaped again
    ("'", "'"),
    ("\xe4<\u20ac>\U0001d11e&", "\xe4&lt;\u20ac&gt;\U0001d11e&amp;"),
    ("\x00<\x00", "\x00&lt;\x00"),
]

UNESCAPE_VECTORS = [
    (ESCAPED, PLAIN),
    ("&amp;lt;", "&lt;"),
    ("&apos;&#60;&#x3C;&nbsp;", "&apos;&#60;&#x3C;&nbsp;"),
    ("&amp&lt&gt&quot", "&amp&lt&gt&quot"),
    ("&&lt;;", "&<;"),
    ("&quot", "&quot"),
    ("\u20ac&gt;\U0001d11e&lt;", "\u20ac>\U0001d11e<"),
    ("&AMP;&Lt;", "&AMP;&Lt;"),
]


@pytest.mark.parametrize(("plain", "escaped"), ESCAPE_VECTORS)
def test_escape(codec: ModuleType, plain: str, escaped: str) -> None:
    assert codec.xml_escape(plain) == escaped
    assert codec.xml_escape(plain.encode()) == escaped.encode()


@pytest.mark.parametrize(("escaped", "plain"), UNESCAPE_VECTORS)
def test_unescape(codec: ModuleType, escaped: str, plain: str) -> None:
    assert codec.xml_unescape(escaped) == plain
    assert codec.xml_unescape(escaped.encode()) == plain.encode()


@pytest.mark.parametrize("value", ["", "plain text", "\u20ac only", "&apos;"])
def test_unchanged_input_is_the_same_object(codec: ModuleType, value: str) -> None:
    raw = value.encode()
    assert codec.xml_unescape(value) is value
    assert codec.xml_unescape(raw) is raw
    if "&" not in value:
        assert codec.xml_escape(value) is value
        assert codec.xml_escape(raw) is raw


def test_output_type_follows_input(codec: ModuleType) -> None:
    assert type(codec.xml_escape('foo<bar>"baz"&')) is str
    assert type(codec.xml_escape(b'foo<bar>"baz"&')) is bytes
    assert type(codec.xml_unescape("foo&lt;bar&gt;")) is str
    assert type(codec.xml_unescape(b"foo&lt;bar&gt;")) is bytes


def test_round_trip(codec: ModuleType) -> None:
    for value in [PLAIN, "&amp;&lt;", "\u20ac\x00<&>"]:
        assert codec.xml_unescape(codec.xml_escape(value)) == value


@pytest.mark.parametrize("value", [None, 1, bytearray(b"<")])
def test_non_strings_are_rejected(codec: ModuleType, value: object) -> None:
    with pytest.raises(TypeError, match=r"^first argument must be a string$"):
        codec.xml_escape(value)
    with pytest.raises(TypeError, match=r"^first argument must be a str or unicode$"):
        codec.xml_unescape(value)
