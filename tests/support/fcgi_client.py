"""A small blocking FastCGI client for tests: real sockets, explicit records."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

from smisk.codec import decode_params, encode_params
from smisk.protocol.records import encode_record, encode_stream, unpack_header

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA = 1, 2, 3, 4, 5, 6, 7, 8
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11


def begin_record(request_id: int, role: int = 1, keep_conn: bool = True) -> bytes:
    body = role.to_bytes(2, "big") + bytes((1 if keep_conn else 0,)) + bytes(5)
    return encode_record(BEGIN, request_id, body)


def params_records(request_id: int, params: dict[str, str] | list[tuple[bytes, bytes]]) -> bytes:
    pairs = (
        [(k.encode("latin-1"), v.encode("latin-1")) for k, v in params.items()]
        if isinstance(params, dict)
        else params
    )
    return encode_stream(PARAMS, request_id, encode_params(pairs)) + encode_record(
        PARAMS, request_id
    )


def stdin_records(request_id: int, body: bytes, chunk: int = 65535) -> bytes:
    parts = [
        encode_record(STDIN, request_id, body[i : i + chunk]) for i in range(0, len(body), chunk)
    ]
    return b"".join(parts) + encode_record(STDIN, request_id)


def request_bytes(
    request_id: int = 1,
    params: dict[str, str] | None = None,
    body: bytes = b"",
    keep_conn: bool = True,
    role: int = 1,
) -> bytes:
    params = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/", "REQUEST_URI": "/"} | (params or {})
    return (
        begin_record(request_id, role, keep_conn)
        + params_records(request_id, params)
        + (stdin_records(request_id, body) if role != 2 else b"")
    )


@dataclass
class Response:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    app_status: int | None = None
    protocol_status: int | None = None
    records: list[tuple[int, int]] = field(default_factory=list)  # (type, content length)

    @property
    def done(self) -> bool:
        return self.protocol_status is not None

    def split(self) -> tuple[dict[str, str], bytes]:
        head, _, body = bytes(self.stdout).partition(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return headers, body


class FastCGIClient:
    """One connection to a FastCGI server."""

    def __init__(self, address: str | tuple[str, int], timeout: float = 30.0) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        if isinstance(address, tuple) and ":" in address[0]:
            family = socket.AF_INET6
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(address)
        except BaseException:
            self.sock.close()
            raise
        self._buffer = bytearray()  # deleting a consumed prefix of a bytearray is cheap
        self.management: list[tuple[int, bytes]] = []
        self.responses: dict[int, Response] = {}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> FastCGIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_record(self) -> tuple[int, int, bytes] | None:
        """Return the next record, or None at EOF."""
        while True:
            if len(self._buffer) >= 8:
                _, rtype, rid, length, padding = unpack_header(bytes(self._buffer[:8]))
                total = 8 + length + padding
                if len(self._buffer) >= total:
                    content = bytes(self._buffer[8 : 8 + length])
                    del self._buffer[:total]
                    return rtype, rid, content
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                if self._buffer:
                    raise AssertionError(f"EOF inside a record: {bytes(self._buffer[:64])!r}")
                return None
            self._buffer += chunk

    def read_response(self, request_id: int = 1) -> Response:
        """Read records until END_REQUEST for ``request_id``."""
        while True:
            response = self.responses.setdefault(request_id, Response())
            if response.done:
                return self.responses.pop(request_id)
            record = self.read_record()
            if record is None:
                raise ConnectionError("connection closed before END_REQUEST")
            self._store(*record)

    def _store(self, rtype: int, rid: int, content: bytes) -> None:
        if rid == 0:
            self.management.append((rtype, content))
            return
        response = self.responses.setdefault(rid, Response())
        response.records.append((rtype, len(content)))
        if rtype == STDOUT:
            response.stdout += content
        elif rtype == STDERR:
            response.stderr += content
        elif rtype == END:
            response.app_status = int.from_bytes(content[:4], "big")
            response.protocol_status = content[4]

    def stream(self, request_id: int = 1) -> Iterator[tuple[int, bytes]]:
        """Yield ``(type, content)`` of each record for ``request_id`` up to END_REQUEST, without
        keeping them (for responses too large to hold)."""
        while True:
            record = self.read_record()
            if record is None:
                raise ConnectionError("connection closed before END_REQUEST")
            rtype, rid, content = record
            if rid != request_id:
                self._store(rtype, rid, content)
                continue
            yield rtype, content
            if rtype == END:
                return

    def read_management(self) -> tuple[int, bytes]:
        while not self.management:
            record = self.read_record()
            if record is None:
                raise ConnectionError("connection closed")
            self._store(*record)
        return self.management.pop(0)

    def get_values(self, names: list[bytes]) -> list[tuple[bytes, bytes]]:
        self.send(encode_record(GET_VALUES, 0, encode_params([(n, b"") for n in names])))
        rtype, content = self.read_management()
        assert rtype == GET_VALUES_RESULT, rtype
        return decode_params(content)

    def request(self, request_id: int = 1, **kwargs: object) -> Response:
        self.send(request_bytes(request_id, **kwargs))  # type: ignore[arg-type]
        return self.read_response(request_id)

    def at_eof(self, skip_management: bool = False) -> bool:
        """True if the server closed the connection (waits up to the socket timeout).

        With ``skip_management``, management records (request id 0) before the close are kept
        in ``management`` instead of counting as "still open"."""
        try:
            while (record := self.read_record()) is not None:
                if not (skip_management and record[1] == 0):
                    return False
                self.management.append((record[0], record[2]))
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
