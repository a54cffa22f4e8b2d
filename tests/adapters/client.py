"""Small HTTP helpers over http.client for what urllib cannot do: read a streamed response
chunk by chunk, leave in the middle of one, send a header twice."""

from __future__ import annotations

import http.client
import threading

from tests.support.nginx import Nginx


def _connect(nginx: Nginx) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)


def read_streamed(nginx: Nginx, path: str, gate: threading.Event) -> tuple[bytes, bytes]:
    """(first piece, whole body): the gate opens only after the first piece arrived."""
    connection = _connect(nginx)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        first = response.read1(65536)
        gate.set()
        return first, first + response.read()
    finally:
        connection.close()


def read_then_leave(nginx: Nginx, path: str) -> bytes:
    """Read the first piece of a response, then close the connection mid-response."""
    connection = _connect(nginx)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        return response.read1(65536)
    finally:
        connection.close()


def get_with_headers(nginx: Nginx, path: str, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """GET ``path`` sending ``headers`` in order (a name may repeat)."""
    connection = _connect(nginx)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
