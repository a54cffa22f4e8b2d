"""Stream: flush pushes output early, blocking calls on the loop raise a clear error, and the
file-like input methods. Line reads are also covered in test_request.py. Each test runs with a
sync and an async service."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.core.apps import SIGNALS
from tests.core.conftest import Web
from tests.support.fcgi_client import begin_record, params_records, stdin_records


@pytest.fixture
def push_signal() -> Iterator[None]:
    SIGNALS.push_release.clear()
    yield
    SIGNALS.push_release.set()


def test_flush_sends_output_before_the_handler_ends(web: Web, push_signal: None) -> None:
    params = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/push"}
    with web.fcgi() as client:
        client.send(begin_record(1) + params_records(1, params) + stdin_records(1, b""))
        records = client.stream(1)
        seen = bytearray()
        while b"part1;" not in seen:  # arrives while the handler is still waiting
            rtype, content = next(records)
            assert rtype == 6, (rtype, content)
            seen += content
        assert b"part2" not in seen
        SIGNALS.push_release.set()
        for rtype, content in records:
            if rtype == 6:
                seen += content
    assert bytes(seen).endswith(b"\r\n\r\npart1;part2 released=True")


def test_blocking_calls_on_the_loop_raise_clearly(web: Web) -> None:
    status, _, body = web.get("/blocking_on_loop", body=b"x", headers={"Content-Type": "a/b"})
    assert status == 200
    result = json.loads(body)
    if web.name.startswith("sync"):
        assert result == {"read": "no error", "readline": "no error"}
    else:
        for name in ("read", "readline"):
            message = result[name]
            assert message.startswith("BlockingCallOnLoopError: blocking")
            assert "await request.input.aread()" in message


def test_stream_misc(web: Web) -> None:
    body = b"ab\ncd\nef\ngh"
    status, _, out = web.get("/stream_misc", body=body, headers={"Content-Type": "text/plain"})
    assert status == 200
    assert json.loads(out) == {
        "zero": "",
        "lines": ["ab\n", "cd\n"],  # readlines(5) stops once 5 bytes were read
        "rest": "ef\ngh",
        "types": [True, True],
    }
