"""Shared set-up for the atheris targets: import path, instrumentation, the libFuzzer entry.

Rules: a target module defines ``test_one_input(data: bytes)`` and calls ``main(test_one_input)``;
anything it raises that is not expected is a finding (libFuzzer saves the input as crash-*).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import atheris  # noqa: E402


def instrumented() -> object:
    """A context manager that instruments the smisk modules imported inside it."""
    return atheris.instrument_imports(include=["smisk"])


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Run libFuzzer with the command line (corpus dirs, -max_total_time=N, ...)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def cuts(fdp: atheris.FuzzedDataProvider, data: bytes, count: int = 6) -> list[bytes]:
    """Split ``data`` at a few offsets chosen by the fuzzer (feeding in pieces is a path too)."""
    points = sorted({fdp.ConsumeIntInRange(0, len(data)) for _ in range(count)})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces
