#!/usr/bin/env python3
"""Fuzz FastCGI name-value pair decoding: C vs Python on any bytes, and the round trip.

Checks: both twins return the same pairs or raise the same error; whatever decodes re-encodes
to bytes that decode to the same pairs; both twins turn the pairs into the same text dict, with
as many names as there are distinct byte names.
"""

from __future__ import annotations

import sys

from _harness import instrumented, main

with instrumented():
    from _differential import same_outcome

    from smisk import _codec, _codec_py


def test_one_input(data: bytes) -> None:
    same_outcome("decode_params", data)
    same_outcome("decode_params", bytearray(data))
    try:
        pairs = _codec_py.decode_params(data)
    except ValueError:
        return
    encoded = _codec.encode_params(pairs)
    assert encoded == _codec_py.encode_params(pairs)
    assert _codec.decode_params(encoded) == pairs
    same_outcome("params_text", pairs)
    text = _codec.params_text(pairs)
    assert len(text) == len(dict(pairs))  # lossless: distinct names stay distinct


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
