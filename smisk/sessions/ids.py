# Rules: no I/O. Every session id that reaches a store has passed ``is_valid_id``.
"""Session ids: 32 characters of ``[0-9a-v]`` (the classic format), 160 bits from a CSPRNG."""

from __future__ import annotations

import re
import secrets
from typing import Any

from smisk.codec import pack

__all__ = ["ID_ALPHABET", "ID_LENGTH", "InvalidSessionIdError", "check_id", "is_valid_id", "new_id"]

ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # pack(..., nbits=5): 5 bits per character
ID_LENGTH = 32  # 20 random bytes = 160 bits packed 5 bits per character (classic length)
_RANDOM_BYTES = 20
_ID_PATTERN = re.compile(r"[0-9a-v]{32}")


class InvalidSessionIdError(ValueError):
    """A value is not a well-formed session id (wrong type, length or alphabet)."""


def new_id() -> str:
    """A fresh session id: 160 bits from ``secrets``, packed 5 bits per character."""
    return pack(secrets.token_bytes(_RANDOM_BYTES), 5)


def is_valid_id(value: Any) -> bool:
    """True when ``value`` is a str of exactly 32 characters of ``[0-9a-v]``."""
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def check_id(value: Any) -> str:
    """Return ``value`` if it is a valid session id, else raise ``InvalidSessionIdError``."""
    if not is_valid_id(value):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InvalidSessionIdError(
            f"invalid session id {shown}: expected {ID_LENGTH} characters of [0-9a-v]"
        )
    return str(value)
