#!/usr/bin/env python3
"""Fuzz URL parsing and formatting (``smisk.core.url.URL``).

Checks: parsing never raises; ``port`` is an int; ``str(url)`` never raises; a URL parsed from
its own string form formats the same again (formatting is a fixed point after one round).
"""

from __future__ import annotations

import sys

import atheris
from _harness import instrumented, main

with instrumented():
    from smisk.core.url import URL


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    as_bytes = fdp.ConsumeBool()
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    url = URL(text.encode("utf-8") if as_bytes else text)
    assert isinstance(url.port, int)
    once = str(url)
    twice = str(URL(once))
    if str(URL(twice)) != twice:
        raise AssertionError(f"{text!r}: {once!r} -> {twice!r} -> {str(URL(twice))!r}")
    url.to_s(port80=True)
    url.uri  # noqa: B018 - the property must not raise


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
