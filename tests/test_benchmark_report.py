"""The benchmark's report logic (benchmarks/run.py): wrk's output with the status script's line,
errors and 503s apart, and the high-concurrency targets. No load runs here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:8080/smisk-sync-uvloop-1w/ka/hello
  2 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.10ms    4.20ms  80.00ms   90.00%
  30000 requests in 3.00s, 4.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:  10000.00
Transfer/sec:      1.33MB
smisk-bench: shed=12 failed=5 p50=11500 p99=40250 p999=75000
"""


@pytest.fixture(scope="module")
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmark_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_wrk_output_with_the_status_line(run: ModuleType) -> None:
    sample = run.parse_wrk(WRK_OUTPUT)
    assert (sample.rps, sample.requests) == (10000.0, 30000)
    assert (sample.p50, sample.p99, sample.p999) == (11.5, 40.25, 75.0)
    assert sample.shed == 12  # the 503s, apart
    assert sample.errors == 3 + 5  # socket errors and the other answers >= 400


def test_wrk_output_without_the_status_line_is_an_error(run: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="status line"):
        run.parse_wrk(WRK_OUTPUT.rsplit("smisk-bench", 1)[0])


def _row(run: ModuleType, server: str, scenario: str, **figures: float) -> object:
    chosen = next(s for s in run.SCENARIOS if s.name == scenario)
    return run.Row(server, chosen, **figures)


def test_the_high_concurrency_targets(run: ModuleType) -> None:
    rows = [
        _row(run, "c-libfcgi-256t", "hello-ka-256", rps=20000, p99=20.0),
        _row(run, "smisk-async-uvloop-1w", "hello-ka-256", rps=21000, p99=29.0),
        _row(run, "smisk-sync-uvloop-1w", "hello-ka-256", rps=13000, p99=90.0, errors=4),
        _row(run, "smisk-sync-uvloop-1w", "echo-64", rps=300, rss=100.0, idle_rss=28.0),
        _row(run, "smisk-async-uvloop-1w", "large", rps=9000, rss=40.0, idle_rss=28.0),
    ]
    fast = run._versus_c(rows, "hello-ka-256", "smisk-async-*", 1.0, 1.5)
    assert fast[-1] == "met" and fast[2].startswith("1.05x, p99 1.45x, 0 errors")
    sync = run._versus_c(rows, "hello-ka-256", "smisk-sync-*", 0.6, 0.0)
    assert sync[-1] == "NOT met"  # fast enough, but with errors
    assert run._no_errors(rows)[2] == "smisk-sync-uvloop-1w hello-ka-256: 4"
    memory = run._load_memory(rows, 1.5)  # the echo row carries bodies: not judged
    assert memory[-1] == "met" and "large" in memory[2]
