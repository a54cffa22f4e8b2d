"""Chooses the codec implementation: the C extension when importable, else the Python twin.

Rules: this module only chooses and re-exports; the codecs live in ``smisk._codec`` (C) and
``smisk._codec_py`` (the reference). ``SMISK_NO_EXTENSIONS=1`` forces the Python twin;
``SMISK_EXTENSION=1`` makes the C twin mandatory (its ImportError propagates).
``IMPLEMENTATION`` names the twin in use ("c" or "python").
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING or os.environ.get("SMISK_NO_EXTENSIONS") == "1":
    from smisk import _codec_py as _impl
else:
    try:
        from smisk import _codec as _impl
    except ImportError:
        if os.environ.get("SMISK_EXTENSION") == "1":
            raise
        from smisk import _codec_py as _impl

IMPLEMENTATION: str = "python" if _impl.__name__.endswith("_py") else "c"

decode_params = _impl.decode_params
encode_params = _impl.encode_params
params_text = _impl.params_text
params_latin1 = _impl.params_latin1
parse_record_header = _impl.parse_record_header
split_records = _impl.split_records
read_request_head = _impl.read_request_head
frame_records = _impl.frame_records
frame_end = _impl.frame_end
pack = _impl.pack
uid = _impl.uid
url_encode = _impl.url_encode
url_escape = _impl.url_escape
url_decode = _impl.url_decode
url_unescape = _impl.url_unescape
decompose_query = _impl.decompose_query
xml_escape = _impl.xml_escape
xml_unescape = _impl.xml_unescape

__all__ = [
    "IMPLEMENTATION",
    "decode_params",
    "decompose_query",
    "encode_params",
    "frame_end",
    "frame_records",
    "pack",
    "params_latin1",
    "params_text",
    "parse_record_header",
    "read_request_head",
    "split_records",
    "uid",
    "url_decode",
    "url_encode",
    "url_escape",
    "url_unescape",
    "xml_escape",
    "xml_unescape",
]
