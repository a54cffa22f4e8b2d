"""smisk.core.xml: the original's xml test vectors (reference sections 11 and 16.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smisk.core import xml

RAW = 'Some <document> with strings & characters which should be "escaped"'
ESCAPED = "Some &lt;document&gt; with strings &amp; characters which should be &quot;escaped&quot;"


def test_module_docstring() -> None:
    assert xml.__doc__ == "XML functions."


def test_escape_and_unescape_vectors() -> None:
    assert xml.escape(RAW) == ESCAPED
    assert xml.unescape(ESCAPED) == RAW


def test_types_are_kept() -> None:
    assert type(xml.escape('foo<bar>"baz"&')) is str
    assert xml.escape(b'foo<bar>"baz"&') == b"foo&lt;bar&gt;&quot;baz&quot;&amp;"
    assert type(xml.escape("foo&lt;bar&gt;")) is str
    assert type(xml.escape(b"foo&lt;bar&gt;")) is bytes
    assert type(xml.unescape(b"a&amp;b")) is bytes


def test_only_the_four_entities() -> None:
    assert xml.escape("it's") == "it's"
    assert xml.escape("&lt;") == "&amp;lt;"
    assert xml.unescape("&apos;&#60;&amp;lt;") == "&apos;&#60;&lt;"


def test_unchanged_input_is_the_same_object() -> None:
    text = "".join(["plain ", "text"])
    assert xml.escape(text) is text
    assert xml.unescape(text) is text


def test_non_strings_are_refused() -> None:
    with pytest.raises(TypeError):
        xml.escape(5)  # type: ignore[type-var]
    with pytest.raises(TypeError):
        xml.unescape(None)  # type: ignore[type-var]


@given(st.text())
def test_round_trip(text: str) -> None:
    assert xml.unescape(xml.escape(text)) == text
