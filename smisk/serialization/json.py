"""``smisk.serialization.json``: the classic path of ``smisk.core.serialization.json``."""

from smisk.core.serialization.json import json_decode, json_encode

__all__ = ["json_decode", "json_encode"]
