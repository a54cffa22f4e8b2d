"""Chooses the codec implementation: the C extension when importable, else the Python twin.

``SMISK_NO_EXTENSIONS=1`` forces the Python twin; ``SMISK_EXTENSION=1`` makes the C twin mandatory.
``IMPLEMENTATION`` names the twin in use ("c" or "python").
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smisk import _codec_py as _impl
elif os.environ.get("SMISK_NO_EXTENSIONS") == "1":
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

__all__ = ["IMPLEMENTATION", "decode_params", "encode_params"]
