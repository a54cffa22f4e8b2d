"""A client that stops reading a large response must not make the server buffer it.

The app writes 100 MiB in 64 KiB pieces (``response.write`` in a sync service, ``await
response.awrite`` in an async one); the client reads a little, then stops for a while. The
server's RSS, measured in its own process, must stay bounded, and the whole body must arrive
byte-exact once the client reads again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fcgi_client import STDOUT, FastCGIClient, request_bytes
from tests.support.serving import ROOT, rss_kib

MiB = 1024 * 1024
SIZE = 100 * MiB
STALL_SECONDS = 1.5  # long enough for an unbounded server to buffer everything many times over
RSS_GROWTH_LIMIT_KIB = 16 * 1024


@pytest.fixture
def app_process(mode: str) -> Iterator[tuple[int, str]]:
    sockdir = Path(tempfile.mkdtemp(prefix="smisk-bp-", dir="/tmp"))
    address = str(sockdir / "app.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.core.serve_app", address, mode],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        while not (line := proc.stdout.readline()).startswith("READY"):
            assert line, "the app process exited"
        yield proc.pid, address
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        for name in os.listdir(sockdir):
            os.unlink(sockdir / name)
        sockdir.rmdir()


def _params(size: int) -> dict[str, str]:
    return {
        "SCRIPT_NAME": "/large",
        "REQUEST_URI": f"/large?size={size}",
        "QUERY_STRING": f"size={size}",
    }


def test_slow_reader_is_not_buffered(app_process: tuple[int, str]) -> None:
    pid, address = app_process
    with FastCGIClient(address) as warm:  # imports, threads and buffers of a first request
        assert len(warm.request(params=_params(4 * MiB)).stdout) > 4 * MiB
    baseline = rss_kib(pid)
    with FastCGIClient(address, timeout=60) as client:
        client.send(request_bytes(params=_params(SIZE)))
        received = 0
        while received < MiB:  # the response is flowing
            record = client.read_record()
            assert record is not None
            received += len(record[2]) if record[0] == STDOUT else 0
        peak = baseline
        deadline = time.monotonic() + STALL_SECONDS
        while time.monotonic() < deadline:  # a measuring window, not synchronisation
            peak = max(peak, rss_kib(pid))
            time.sleep(0.05)
        response = client.read_response()
    body_size = received + len(response.stdout)
    assert response.protocol_status == 0
    assert body_size > SIZE  # headers plus the whole body
    assert peak - baseline < RSS_GROWTH_LIMIT_KIB, (baseline, peak)
