"""Access log formats and the writer thread (batches, reopen, stderr)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from smisk.runtime.ops import OpsConfig, reopen_logs
from smisk.runtime.ops.accesslog import AccessEntry, AccessFormat, LogWriter
from tests.support.serving import wait_until

PARAMS = [
    (b"REMOTE_ADDR", b"10.0.0.1"),
    (b"REQUEST_METHOD", b"POST"),
    (b"REQUEST_URI", b'/a?"b"'),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"HTTP_USER_AGENT", b"agent\x01"),
]


def entry(status: int = 201) -> AccessEntry:
    return AccessEntry(PARAMS, 1_700_000_000.25, status, 12, (0.5, 0.2, 0.3))


def test_combined_escapes_quotes_and_control_characters() -> None:
    line = AccessFormat("combined").line(entry(), pid=7)
    assert line.startswith("10.0.0.1 - - [")
    assert '"POST /a?\\x22b\\x22 HTTP/1.1" 201 12 "-" "agent\\x01"' in line
    assert line.endswith("request_time=0.500 queue_time=0.200 handler_time=0.300")


def test_json_and_templates() -> None:
    fields = json.loads(AccessFormat("json").line(entry(), pid=7))
    assert fields["uri"] == '/a?"b"' and fields["queue_time"] == 0.2 and fields["pid"] == 7
    assert fields["time"].startswith("2023-11-1")
    template = AccessFormat("{method} {status} {queue_time}")
    assert template.line(entry(), pid=7) == "POST 201 0.2"


@pytest.mark.parametrize("spec", ["apache", "{nope}", "{status"])
def test_bad_formats_are_refused_at_start(spec: str) -> None:
    with pytest.raises(ValueError):
        OpsConfig(access_log=spec)


def test_bad_status_path_is_refused() -> None:
    with pytest.raises(ValueError, match="start with"):
        OpsConfig(status_path="status")


def test_writer_writes_batches_runs_work_and_reopens(tmp_path: Path) -> None:
    path, moved = tmp_path / "access.log", tmp_path / "access.log.1"
    writer = LogWriter(AccessFormat("common"), str(path))
    ran = threading.Event()
    try:
        for status in range(200, 205):
            writer.put(entry(status))
        writer.put(ran.set)
        assert ran.wait(5)
        wait_until(lambda: len(path.read_text().splitlines()) == 5)
        path.rename(moved)
        reopen_logs()
        writer.put(entry(299))
        wait_until(lambda: path.exists() and path.read_text())
    finally:
        writer.close()
    assert " 299 12" in path.read_text() and " 299 " not in moved.read_text()
    assert [line.split()[-2] for line in moved.read_text().splitlines()] == [
        "200",
        "201",
        "202",
        "203",
        "204",
    ]


def test_writer_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    writer = LogWriter(AccessFormat("{status}"), "-")
    writer.put(entry(418))
    writer.close()
    assert capfd.readouterr().err == "418\n"
