"""smisk.core.serialization.json as the documentation's examples use it."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smisk.core.serialization.json import json_decode, json_encode


def test_documentation_example_body_decodes() -> None:
    body = b'{"Url": "", "Position": [125, "100"]}'
    assert json_decode(body) == {"Url": "", "Position": [125, "100"]}
    assert json_decode(body.decode()) == {"Url": "", "Position": [125, "100"]}


def test_encode_is_ascii_safe_and_handles_dates_and_sets() -> None:
    text = json_encode({"name": "\u00e5", "when": datetime.date(2009, 9, 1), "s": {1}})
    assert text.isascii()
    assert json.loads(text) == {"name": "\u00e5", "when": "2009-09-01", "s": [1]}


def test_errors() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_encode(object())
    with pytest.raises(ValueError):
        json_decode("{nope")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(json_values)
def test_round_trip(value: object) -> None:
    assert json_decode(json_encode(value)) == value
