"""atheris target: the C codec twin must behave exactly like the Python twin on any input.

Rules: a crash, a sanitizer report or a difference (result, type, identity, or exception type
and message) is a finding. Run with a build of smisk._codec, ideally under AddressSanitizer:

    pip install atheris && python fuzz/codec_differential.py -max_total_time=600
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import atheris

with atheris.instrument_imports():
    from smisk import _codec as c
    from smisk import _codec_py as py

STRING_FUNCTIONS = ["url_encode", "url_escape", "url_decode", "xml_escape", "xml_unescape"]
CHARSETS = ["utf-8", "latin-1", "ascii", "utf-16", None]
SEPARATORS = ["&", ";"]


def outcome(function: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    try:
        result = function(*args)
    except Exception as error:  # the exception is part of what must match
        return ("raised", type(error), str(error))
    return ("returned", type(result), result, bool(args) and result is args[0])


def check(name: str, *args: Any) -> None:
    expected = outcome(getattr(py, name), *args)
    actual = outcome(getattr(c, name), *args)
    if actual != expected:
        raise AssertionError(f"{name}{args!r}: C {actual!r} != Python {expected!r}")


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    choice = provider.ConsumeIntInRange(0, 7)
    raw = provider.ConsumeBytes(provider.remaining_bytes() // 2)
    text = provider.ConsumeUnicodeNoSurrogates(len(raw))
    for value in (raw, text):
        for name in STRING_FUNCTIONS:
            check(name, value)
        check("pack", value, 4 + choice % 3)
        check(
            "decompose_query", value, CHARSETS[choice % 5], choice % 2 == 0, SEPARATORS[choice % 2]
        )
    check("decode_params", raw)
    check("parse_record_header", raw, choice)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
