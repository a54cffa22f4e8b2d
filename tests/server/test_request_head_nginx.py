"""Behind a real nginx, a request's opening arrives in one read and is decoded in one codec call
(``read_request_head``); the server answers exactly as it does reading record by record.

Rules: the server runs in this process (ServerThread), so patching the connection module's
``read_request_head`` reaches it; nginx is the real front end (tests/support/nginx.py).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smisk import codec
from smisk.protocol import connection as connection_module
from tests.support.nginx import Nginx
from tests.support.serving import ServerThread

# Headers as a browser sends them, one over 127 bytes (a 4-byte length in the PARAMS stream).
HEADERS = {
    "User-Agent": "Mozilla/5.0 " + "x" * 200,
    "Accept": "text/html,application/xhtml+xml",
    "Accept-Language": "en-GB,en;q=0.9",
    "Cookie": "a=1; b=2",
}
# (method, path, body): GETs are openings read whole; a POST's body follows in the same write.
REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/params?a=1", None),
    ("GET", "/hello", None),
    ("POST", "/echo", b"a=1&b=2"),
    ("GET", "/params?after=post", None),
    ("GET", "/nokeep/params?b=2", None),
    ("GET", "/fail", None),
    ("GET", "/params?after=failure", None),
]


@pytest.fixture
def front(server: ServerThread, tmp_path: Path) -> Iterator[Nginx]:
    with Nginx(tmp_path / "nginx", [server.addresses[0]]) as nginx:
        yield nginx


@pytest.fixture
def heads_read(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The heads the connections read whole (the real function, watched)."""
    heads: list[Any] = []

    def watched(data: bytes, max_bytes: int, max_count: int) -> Any:
        head = codec.read_request_head(data, max_bytes, max_count)
        if head is not None:
            heads.append(head)
        return head

    monkeypatch.setattr(connection_module, "read_request_head", watched)
    return heads


def fetch_all(port: int) -> list[tuple[int, Any]]:
    """Every request of REQUESTS on one keep-alive connection to nginx: status and body (the
    params as a dict without REMOTE_PORT, which differs per connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out: list[tuple[int, Any]] = []
    try:
        for method, path, body in REQUESTS:
            conn.request(method, path, body=body, headers=HEADERS)
            response = conn.getresponse()
            data = response.read()
            if "/params" in path:
                sent = json.loads(data)
                sent["params"] = [p for p in sent["params"] if p[0] != "REMOTE_PORT"]
                out.append((response.status, sent))
            else:
                out.append((response.status, data))
    finally:
        conn.close()
    return out


@pytest.mark.nginx
def test_same_answers_with_and_without_reading_openings_whole(
    front: Nginx, heads_read: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = fetch_all(front.port)
    gets = sum(method == "GET" for method, _, _ in REQUESTS)
    assert 0 < len(heads_read) <= gets  # nginx writes a GET's opening in one go
    assert [status for status, _ in whole] == [200, 200, 200, 200, 200, 500, 200]
    received = dict(whole[0][1]["params"])
    assert received["HTTP_USER_AGENT"] == HEADERS["User-Agent"]
    assert received["QUERY_STRING"] == "a=1"

    monkeypatch.setattr(connection_module, "read_request_head", lambda *args: None)
    assert fetch_all(front.port) == whole
