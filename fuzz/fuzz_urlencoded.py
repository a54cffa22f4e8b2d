#!/usr/bin/env python3
"""Fuzz urlencoded form bodies and the Cookie header: the parsers built on decompose_query.

Checks: ``UrlEncodedParser`` gives the same result fed whole or in pieces, raises only
``RequestEntityTooLarge`` and only past its limit; the C and Python ``decompose_query`` agree;
``parse_cookies`` never raises and returns only str keys with str, None or list values.
"""

from __future__ import annotations

import sys

import atheris
from _harness import cuts, instrumented, main

with instrumented():
    from _differential import same_outcome

    from smisk.core.cookies import parse_cookies
    from smisk.core.forms import RequestEntityTooLarge, UrlEncodedParser

CHARSETS = ["utf-8", "latin-1", "cp1252", "utf-16", "bogus", None]


def _parse(pieces: list[bytes], limit: int, charset: str, tolerant: bool) -> object:
    parser = UrlEncodedParser(limit, charset, tolerant=tolerant)
    try:
        for piece in pieces:
            parser.feed(piece)
        return parser.close()
    except RequestEntityTooLarge:
        assert 0 <= limit < sum(map(len, pieces))
        return "too large"
    except UnicodeDecodeError:
        assert not tolerant
        return "undecodable"


def _check_cookies(header: object, charset: str | None) -> None:
    cookies = parse_cookies(header, charset)  # type: ignore[arg-type]
    for key, value in cookies.items():
        assert isinstance(key, str)
        for item in value if isinstance(value, list) else [value]:
            assert item is None or isinstance(item, str), item


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    charset = fdp.PickValueInList(CHARSETS)
    tolerant = fdp.ConsumeBool()
    limit = fdp.ConsumeIntInRange(-1, 2048)
    body = fdp.ConsumeBytes(fdp.remaining_bytes() // 2)
    text_charset = charset or "utf-8"
    if text_charset != "bogus":
        whole = _parse([body], limit, text_charset, tolerant)
        assert whole == _parse(cuts(fdp, body), limit, text_charset, tolerant)
    for separator in ("&", ";"):
        same_outcome("decompose_query", body, charset, tolerant, separator)
    _check_cookies(body, charset)
    _check_cookies(body.decode("latin-1"), charset)


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
