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
import timeit
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from smisk import _codec as c
from smisk import _codec_py as py

MIN_SPEEDUP_OVER_PYTHON = 5.0  # the target for every function
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

Case = tuple[str, str, Callable[[Any], Any], Callable[[Any], Any], Callable[[], Any] | None, Any]


def cases() -> list[Case]:
    """(function, input label, C call, Python call, stdlib thunk or None, argument)."""
    rows: list[Case] = []
    sizes = {"short": 0, "4 KiB": 1}

    def add(name: str, label: str, arg: Any, stdlib: Callable[[], Any] | None) -> None:
        rows.append((name, label, getattr(c, name), getattr(py, name), stdlib, arg))

    for label, index in sizes.items():
        url = (URL_SHORT, URL_LONG)[index]
        encoded = py.url_encode(url)
        query = (QUERY_SHORT, QUERY_LONG)[index]
        xml = (XML_SHORT, XML_LONG)[index]
        escaped = py.xml_escape(xml)
        data = (bytes(range(20)), bytes(i % 256 for i in range(KIB4)))[index]
        params = (PARAMS_SHORT, PARAMS_LONG)[index]
        raw_params = py.encode_params(params)
        add("url_encode", label, url, lambda u=url: urllib.parse.quote(u, safe="!'()*-._~"))
        add("url_escape", label, url, lambda u=url: urllib.parse.quote(u, safe="/?&=+$,;!'()*"))
        add("url_decode", label, encoded, lambda e=encoded: urllib.parse.unquote(e))
        add("decompose_query", label, query, lambda q=query: urllib.parse.parse_qs(q, True))
        add("xml_escape", label, xml, lambda x=xml: html.escape(x))
        add("xml_unescape", label, escaped, lambda e=escaped: html.unescape(e))
        add("pack", label, data, lambda d=data: base64.b32encode(d))
        add("encode_params", label, params, None)
        add("decode_params", label, raw_params, None)
    rows.append(("uid", "-", lambda _: c.uid(), lambda _: py.uid(), lambda: uuid.uuid4().hex, None))
    unpack = HEADER.unpack_from
    add("parse_record_header", "8 bytes", RECORD, lambda: unpack(RECORD, 0))
    return rows


def ns_per_call(thunk: Callable[[], Any], rounds: int) -> float:
    """Median over rounds of the time per call, in nanoseconds."""
    timer = timeit.Timer(thunk)
    number, _ = timer.autorange()
    number = max(1, int(number * ROUND_SECONDS / 0.2))
    return statistics.median(timer.repeat(rounds, number)) / number * 1e9


def measure(rounds: int, only: str = "") -> list[tuple[str, str, float, float, float | None]]:
    """Time every case whose function name contains ``only``:
    (function, input, C ns, Python ns, stdlib ns or None)."""
    results = []
    for name, label, c_call, py_call, stdlib, arg in cases():
        if only not in name:
            continue
        assert c_call(arg) == py_call(arg) or name == "uid", name
        c_ns = ns_per_call(lambda f=c_call, a=arg: f(a), rounds)
        py_ns = ns_per_call(lambda f=py_call, a=arg: f(a), rounds)
        std_ns = ns_per_call(stdlib, rounds) if stdlib is not None else None
        results.append((name, label, c_ns, py_ns, std_ns))
    return results


def table(results: list[tuple[str, str, float, float, float | None]]) -> list[str]:
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


def misses(results: list[tuple[str, str, float, float, float | None]]) -> list[str]:
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
