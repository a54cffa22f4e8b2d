"""The C vs Python comparison the codec targets share (same rules as tests/codec)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smisk import _codec, _codec_py


def outcome(function: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did: its result (with its type and identity to the first argument) or error."""
    try:
        result = function(*args)
    except Exception as error:
        return ("raised", type(error), str(error))
    same = bool(args) and result is args[0]
    return ("returned", type(result), result, same)


def same_outcome(name: str, *args: Any) -> None:
    """Raise AssertionError when the C and Python twins of ``name`` disagree on ``args``."""
    expected = outcome(getattr(_codec_py, name), *args)
    got = outcome(getattr(_codec, name), *args)
    if got != expected:
        raise AssertionError(f"{name}{args!r}: C {got!r} != Python {expected!r}")
