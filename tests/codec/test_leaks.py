"""Reference and memory leaks in the C twin, cheap enough for every CI run.

Rules: each call is repeated many times; the traced memory must not grow with the count and the
input's reference count must come back to where it was, on success and on every error path.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import tracemalloc
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

REPEATS = 3000
GROWTH_LIMIT = 64 * 1024  # bytes; a leak of even one small object per call passes 100 KB
ATTEMPTS = 2

TEXT = 'a <b> & "c" %41 \xe5\u20ac'
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("url_encode", (TEXT,), {}),
    ("url_encode", (TEXT.encode(),), {}),
    ("url_escape", ("plain",), {}),
    ("url_decode", ("a%41%C3%A5%FF",), {}),
    ("url_decode", (b"a%41",), {}),
    ("url_decode", ("\ud800%41",), {}),  # raises UnicodeEncodeError
    ("xml_escape", (TEXT,), {}),
    ("xml_escape", (TEXT * 20,), {}),
    ("xml_unescape", ("&lt;&amp;&quot;\u20ac" * 20,), {}),
    ("xml_unescape", (5,), {}),  # raises TypeError
    ("pack", (b"\x01" * 20, 6), {}),
    ("pack", ("text", 9), {}),  # raises ValueError
    ("uid", (), {}),
    ("uid", (0, "node"), {}),
    ("decompose_query", ("a=1&a=2&a=%E5&b&c=%41",), {}),
    ("decompose_query", ("k=%E5" * 200,), {"tolerant": False}),  # raises UnicodeDecodeError
    ("decompose_query", ("a=1",), {"charset": "bogus"}),  # raises LookupError
    ("decompose_query", (" a=1; b=2",), {"separator": ";", "charset": None}),
    ("decode_params", (b"\x01\x02abc" * 10,), {}),
    ("decode_params", (b"\x01\x02abc\x05",), {}),  # raises ValueError
    ("encode_params", ([(b"a", b"b"), (b"c" * 200, b"d")],), {}),
    ("encode_params", ([(b"a", "b")],), {}),  # raises TypeError
    ("parse_record_header", (b"\x01\x05\x00\x01\x03\xe8\x00\x00",), {}),
    ("parse_record_header", (bytearray(10), 1), {}),
    ("parse_record_header", (b"",), {}),  # raises ValueError
    ("pack", (), {"nbits": 5}),  # raises TypeError (argument binding)
]


def call_quietly(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with contextlib.suppress(Exception):  # the error paths are what is being checked
        function(*args, **kwargs)


def traced_growth(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> int:
    for _ in range(50):  # warm caches (interned strings, codec lookups) before measuring
        call_quietly(function, args, kwargs)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(REPEATS):
            call_quietly(function, args, kwargs)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("name", "args", "kwargs"), CALLS)
def test_no_leaks(
    c_codec: ModuleType, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    function = getattr(c_codec, name)
    counts = [sys.getrefcount(arg) for arg in args]
    # tracemalloc sees every thread: another test's leftover thread may allocate meanwhile, so a
    # measurement counts only when it repeats (a real leak grows on every attempt)
    growth = min(traced_growth(function, args, kwargs) for _ in range(ATTEMPTS))
    assert growth < GROWTH_LIMIT
    assert [sys.getrefcount(arg) for arg in args] == counts
