"""Benchmark the codec twins against each other and against the standard library.

Rules: a benchmark, not a test; it needs the C twin built (``pip install -e .``). Each cell is the
median of several timeit rounds, in nanoseconds per call. ``--check`` exits 1 unless the C twin is
at least 5x its Python twin on every row and faster than the standard library where it has one.

    python benchmarks/codec.py [--rounds N] [--check]
"""

from __future__ import annotations

import argparse
import base64
import html
import statistics
import struct
import sys
import time
import timeit
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from smisk import _codec as c
from smisk import _codec_py as py

MIN_SPEEDUP_OVER_PYTHON = 5.0  # the target for every function
# CPU time of this process, not wall time: other processes on the machine then cost us less.
CLOCK = time.process_time
ROUND_SECONDS = 0.05  # long enough per round to drown timer noise, short enough to finish fast

KIB4 = 4096


def fill(unit: str, size: int = KIB4) -> str:
    """Repeat unit up to exactly size characters."""
    return (unit * (size // len(unit) + 1))[:size]


URL_SHORT = "/mos/j\xe4ger/grek land/hej.html?mos=japp&\xf6land=nej#ge-mig"
URL_LONG = fill("Grek land/hej.html?mos=japp&\xf6land=nej#ge-mig/d\xe5 text, more text: 42 ")
QUERY_SHORT = "name=Jack%20%C3%B6l&age=53&city=G%C3%B6teborg&q=a+b"
QUERY_LONG = fill("".join(f"key{i}=value+{i}%20%C3%A5&" for i in range(40)))
XML_SHORT = 'Some <document> with strings & characters which should be "escaped"'
XML_LONG = fill('<p class="note">Fish &amp; chips cost < 5 pounds & "taste" > nothing.</p>\n')
PARAMS_SHORT = [(b"SCRIPT_NAME", b"/index"), (b"REQUEST_METHOD", b"GET"), (b"QUERY_STRING", b"")]
PARAMS_LONG = [(f"HTTP_X_HEADER_{i}".encode(), b"v" * 80) for i in range(40)]
HEADER = struct.Struct(">BBHHBx")
RECORD = HEADER.pack(1, 5, 1, 1000, 0) + bytes(1000)

Row = tuple[str, str, float, float, float | None]  # function, input, C, Python, stdlib (ns)
Call = tuple[Callable[..., Any], tuple[Any, ...]]  # a function and its arguments
Case = tuple[str, str, Call, Call, Call | None]  # function, input, C, Python, stdlib


def cases() -> list[Case]:
    """Every benchmark: (function, input label, C call, Python call, stdlib call or None)."""
    rows: list[Case] = []

    def add(name: str, label: str, args: tuple[Any, ...], stdlib: Call | None) -> None:
        rows.append((name, label, (getattr(c, name), args), (getattr(py, name), args), stdlib))

    quote, unquote, parse_qs = urllib.parse.quote, urllib.parse.unquote, urllib.parse.parse_qs
    for label, index in {"short": 0, "4 KiB": 1}.items():
        url = (URL_SHORT, URL_LONG)[index]
        encoded = py.url_encode(url)
        query = (QUERY_SHORT, QUERY_LONG)[index]
        xml = (XML_SHORT, XML_LONG)[index]
        escaped = py.xml_escape(xml)
        data = (bytes(range(20)), bytes(i % 256 for i in range(KIB4)))[index]
        params = (PARAMS_SHORT, PARAMS_LONG)[index]
        add("url_encode", label, (url,), (quote, (url, "!'()*-._~")))
        add("url_escape", label, (url,), (quote, (url, "/?&=+$,;!'()*")))
        add("url_decode", label, (encoded,), (unquote, (encoded,)))
        add("decompose_query", label, (query,), (parse_qs, (query, True)))
        add("xml_escape", label, (xml,), (html.escape, (xml,)))
        add("xml_unescape", label, (escaped,), (html.unescape, (escaped,)))
        add("pack", label, (data,), (base64.b32encode, (data,)))
        add("encode_params", label, (params,), None)
        add("decode_params", label, (py.encode_params(params),), None)
    add("uid", "-", (), (lambda: uuid.uuid4().hex, ()))
    add("parse_record_header", "8 bytes", (RECORD,), (HEADER.unpack_from, (RECORD, 0)))
    return rows


def timer(call: Call) -> timeit.Timer:
    """A timer that runs the call itself, with no wrapper function around it."""
    function, args = call
    names = [f"a{i}" for i in range(len(args))]
    namespace = {"f": function, **dict(zip(names, args, strict=True))}
    return timeit.Timer(f"f({', '.join(names)})", timer=CLOCK, globals=namespace)


def calls_per_round(call: Call) -> int:
    """How many calls make one round of about ROUND_SECONDS."""
    number, seconds = timer(call).autorange()
    return max(1, int(number * ROUND_SECONDS / seconds))


def measure(rounds: int, only: str = "") -> list[Row]:
    """Time every case whose function name contains ``only``. The twins and the standard library
    are timed in turn within each round, so that load from other processes hits all of them
    alike; every cell is the median over the rounds."""
    results = []
    for name, label, c_call, py_call, stdlib in cases():
        if only not in name:
            continue
        if name != "uid":
            assert c_call[0](*c_call[1]) == py_call[0](*py_call[1]), name
        calls = [c_call, py_call] + ([stdlib] if stdlib is not None else [])
        numbers = [calls_per_round(call) for call in calls]
        samples: list[list[float]] = [[] for _ in calls]
        for _ in range(rounds):
            for call, number, sample in zip(calls, numbers, samples, strict=True):
                sample.append(timer(call).timeit(number) / number * 1e9)
        medians = [statistics.median(sample) for sample in samples]
        results.append((name, label, medians[0], medians[1], medians[2] if stdlib else None))
    return results


def table(results: list[Row]) -> list[str]:
    """Markdown rows; the two last columns say how many times faster C is."""
    lines = [
        "| function | input | C ns | Python ns | stdlib ns | Python / C | stdlib / C |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label, c_ns, py_ns, std_ns in results:
        std = f"{std_ns:,.0f}" if std_ns is not None else "-"
        std_ratio = f"{std_ns / c_ns:.1f}x" if std_ns is not None else "-"
        lines.append(
            f"| {name} | {label} | {c_ns:,.0f} | {py_ns:,.0f} | {std} | "
            f"{py_ns / c_ns:.1f}x | {std_ratio} |"
        )
    return lines


def misses(results: list[Row]) -> list[str]:
    """Rows that miss a target."""
    missed = []
    for name, label, c_ns, py_ns, std_ns in results:
        if py_ns / c_ns < MIN_SPEEDUP_OVER_PYTHON:
            missed.append(f"{name} ({label}): only {py_ns / c_ns:.1f}x the Python twin")
        if std_ns is not None and std_ns <= c_ns:
            missed.append(f"{name} ({label}): not faster than the standard library")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timeit rounds per cell")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", default="", help="only functions whose name contains this")
    options = parser.parse_args(argv)
    results = measure(options.rounds, options.only)
    print("\n".join(table(results)))
    missed = misses(results)
    for line in missed:
        print("missed:", line, file=sys.stderr)
    return 1 if options.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
