"""smisk-probe: FastCGI conformance checks against any FastCGI socket.

Rules: a blocking client, one fresh connection per check, every wait bounded by ``timeout``.
A check never trusts the peer: bad framing, an early close or silence is a failed check with the
reason, never an exception out of the probe. Checks follow the FastCGI 1.0 specification (the
section numbers in each docstring).
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smisk.codec import decode_params, encode_params
from smisk.protocol.constants import KEEP_CONN, ProtocolStatus, RecordType, Role
from smisk.protocol.records import encode_record, encode_stream

__all__ = ["CHECKS", "CheckResult", "ProbeFailure", "main", "parse_address", "run_checks"]

_HEADER = struct.Struct(">BBHHBx")
UNKNOWN_MANAGEMENT_TYPE = 42  # what the specification's §4.2 example would call "type T"
UNKNOWN_ROLE = 99  # no role has this number
BIG_BODY = 1024 * 1024  # 1 MiB of STDIN: many records, more than any socket buffer
BIG_PARAM = 100_000  # one value longer than a record: the pair straddles two PARAMS records
GET_VALUES_NAMES = (b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS")
EXIT_ALL_PASSED, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2

Address = str | tuple[str, int]


class ProbeFailure(Exception):
    """A check found the peer's behaviour wrong; the message says what it saw."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: ``passed`` and what was observed."""

    name: str
    passed: bool
    detail: str


def parse_address(text: str) -> Address:
    """``unix:/path`` or ``/path`` (a unix socket), ``host:port``, ``[v6]:port`` or ``:port``."""
    if text.startswith("unix:"):
        return text[5:]
    if text.startswith("/"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not an address: {text!r} (use HOST:PORT or unix:/path)")
    return (host.strip("[]") or "127.0.0.1", int(port))


# -- the client ------------------------------------------------------------------------------


class _Connection:
    """One connection: raw sends, and records read with a deadline."""

    def __init__(self, address: Address, timeout: float) -> None:
        self.timeout = timeout
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(address)
        except BaseException:
            self.sock.close()
            raise
        self.buffer = bytearray()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as error:
            raise ProbeFailure(f"sending failed: {error}") from None

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeFailure(f"no answer within {self.timeout:g} s")
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(65536)
        except TimeoutError:
            raise ProbeFailure(f"no answer within {self.timeout:g} s") from None
        except OSError as error:
            raise ProbeFailure(f"connection error: {error}") from None

    def record(self) -> tuple[int, int, bytes] | None:
        """The next record, or None when the peer closed the connection between records."""
        deadline = time.monotonic() + self.timeout
        while True:
            if len(self.buffer) >= 8:
                version, rtype, rid, length, padding = _HEADER.unpack_from(self.buffer)
                if version != 1:
                    raise ProbeFailure(f"the peer sent a record with version {version}")
                if len(self.buffer) >= 8 + length + padding:
                    content = bytes(self.buffer[8 : 8 + length])
                    del self.buffer[: 8 + length + padding]
                    return rtype, rid, content
            chunk = self._recv(deadline)
            if not chunk:
                if self.buffer:
                    raise ProbeFailure("connection closed inside a record")
                return None
            self.buffer += chunk

    def closed(self) -> bool:
        """True if the peer closes without sending anything more (waits up to the timeout)."""
        try:
            return self.record() is None
        except ProbeFailure as failure:
            if "connection error" in str(failure):
                return True  # a reset is a close too
            raise

    def management(self) -> tuple[int, bytes]:
        """The next record on request id 0."""
        while True:
            record = self.record()
            if record is None:
                raise ProbeFailure("connection closed without a management reply")
            if record[1] == 0:
                return record[0], record[2]


@dataclass
class _Response:
    stdout: bytes = b""
    stdout_ended: bool = False
    app_status: int = -1
    protocol_status: int = -1


def _read_responses(conn: _Connection, ids: Sequence[int]) -> dict[int, _Response]:
    """Read records until every id in ``ids`` got END_REQUEST; check each stream's order."""
    responses = {request_id: _Response() for request_id in ids}
    pending = set(ids)
    while pending:
        record = conn.record()
        if record is None:
            raise ProbeFailure(f"connection closed before END_REQUEST for id {min(pending)}")
        rtype, rid, content = record
        response = responses.get(rid)
        if response is None or rid not in pending:
            continue  # management records, other ids
        if rtype == RecordType.STDOUT:
            if response.stdout_ended:
                raise ProbeFailure(f"STDOUT after the empty STDOUT record (id {rid})")
            response.stdout += content
            response.stdout_ended = not content
        elif rtype == RecordType.END_REQUEST:
            if len(content) != 8:
                raise ProbeFailure(f"END_REQUEST body of {len(content)} bytes, not 8")
            response.app_status = int.from_bytes(content[:4], "big")
            response.protocol_status = content[4]
            pending.discard(rid)
    return responses


def _completed(response: _Response, request_id: int = 1) -> str:
    """Check a normal response; return its status line for the report."""
    if response.protocol_status != ProtocolStatus.REQUEST_COMPLETE:
        raise ProbeFailure(
            f"END_REQUEST protocolStatus {response.protocol_status} (id {request_id})"
        )
    if not response.stdout_ended:
        raise ProbeFailure(f"no empty STDOUT record before END_REQUEST (id {request_id})")
    head = response.stdout.split(b"\r\n\r\n", 1)[0]
    if b"\r\n\r\n" not in response.stdout and b"\n\n" not in response.stdout:
        raise ProbeFailure(f"STDOUT has no CGI header block (id {request_id})")
    for line in head.split(b"\r\n"):
        if line[:7].lower() == b"status:":
            return line[7:].strip().decode("latin-1")
    return "200 (no Status header)"


# -- request bytes ---------------------------------------------------------------------------


def _record(rtype: int, rid: int, content: bytes = b"", padding: int | None = None) -> bytes:
    """A record with chosen padding (None: to a multiple of 8)."""
    pad = -len(content) % 8 if padding is None else padding
    return _HEADER.pack(1, rtype, rid, len(content), pad) + content + bytes(pad)


def _begin(rid: int, role: int = Role.RESPONDER, keep: bool = True) -> bytes:
    body = struct.pack(">HB5x", role, KEEP_CONN if keep else 0)
    return encode_record(RecordType.BEGIN_REQUEST, rid, body)


class _Target:
    """What every check's request asks for (``--path``) and how to reach the peer."""

    def __init__(self, address: Address, path: str, timeout: float) -> None:
        self.address, self.timeout = address, timeout
        self.path, _, self.query = path.partition("?")

    def connect(self) -> _Connection:
        try:
            return _Connection(self.address, self.timeout)
        except OSError as error:
            raise ProbeFailure(f"cannot connect: {error}") from None

    def params(self, method: str = "GET", body: int = 0, **extra: str) -> list[tuple[bytes, bytes]]:
        uri = self.path + (f"?{self.query}" if self.query else "")
        env = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "smisk-probe",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": self.path,
            "REQUEST_URI": uri,
            "QUERY_STRING": self.query,
            "HTTP_HOST": "localhost",
        }
        if body:
            env |= {"CONTENT_LENGTH": str(body), "CONTENT_TYPE": "application/octet-stream"}
        env |= extra
        return [(k.encode(), v.encode("utf-8")) for k, v in env.items()]

    def request(
        self,
        rid: int = 1,
        keep: bool = True,
        body: bytes = b"",
        extra: dict[str, str] | None = None,
    ) -> tuple[bytes, bytes, bytes]:
        """BEGIN_REQUEST, PARAMS (with terminator), STDIN (with terminator) as three parts."""
        method = "POST" if body else "GET"
        params = encode_params(self.params(method, len(body), **(extra or {})))
        return (
            _begin(rid, keep=keep),
            encode_stream(RecordType.PARAMS, rid, params) + encode_record(RecordType.PARAMS, rid),
            encode_stream(RecordType.STDIN, rid, body) + encode_record(RecordType.STDIN, rid),
        )


# -- the checks ------------------------------------------------------------------------------
# Each takes the target and returns what it saw, or raises ProbeFailure.


def _one_request(target: _Target, data: bytes, rid: int = 1) -> str:
    conn = target.connect()
    try:
        conn.send(data)
        return _completed(_read_responses(conn, [rid])[rid], rid)
    finally:
        conn.close()


def check_responder(target: _Target) -> str:
    """§6.2: a plain RESPONDER request gets STDOUT, an empty STDOUT, END_REQUEST(COMPLETE)."""
    return "status " + _one_request(target, b"".join(target.request()))


def check_get_values(target: _Target) -> str:
    """§4.1: GET_VALUES is answered with the names asked for; unknown names are left out."""
    conn = target.connect()
    try:
        asked = [(name, b"") for name in (*GET_VALUES_NAMES, b"SMISK_PROBE_UNKNOWN")]
        conn.send(encode_record(RecordType.GET_VALUES, 0, encode_params(asked)))
        rtype, content = conn.management()
    finally:
        conn.close()
    if rtype != RecordType.GET_VALUES_RESULT:
        raise ProbeFailure(f"answered with record type {rtype}, not GET_VALUES_RESULT")
    try:
        values = dict(decode_params(content))
    except ValueError as error:
        raise ProbeFailure(f"GET_VALUES_RESULT does not decode: {error}") from None
    if b"SMISK_PROBE_UNKNOWN" in values:
        raise ProbeFailure("an unknown name was answered (the spec says: leave it out)")
    bad = [n.decode() for n, v in values.items() if not v.isdigit()]
    if bad:
        raise ProbeFailure(f"non-numeric values for {', '.join(bad)}")
    if not values:
        raise ProbeFailure("empty GET_VALUES_RESULT")
    return ", ".join(f"{n.decode()}={v.decode()}" for n, v in values.items())


def check_unknown_type(target: _Target) -> str:
    """§4.2: a management record of an unknown type gets UNKNOWN_TYPE naming that type."""
    conn = target.connect()
    try:
        conn.send(encode_record(UNKNOWN_MANAGEMENT_TYPE, 0, b"probe"))
        rtype, content = conn.management()
    finally:
        conn.close()
    if rtype != RecordType.UNKNOWN_TYPE or content[:1] != bytes((UNKNOWN_MANAGEMENT_TYPE,)):
        raise ProbeFailure(f"answered with type {rtype} {content[:8]!r}")
    return f"UNKNOWN_TYPE for type {UNKNOWN_MANAGEMENT_TYPE}"


def check_unknown_role(target: _Target) -> str:
    """§5.5, §3.3: an unknown role gets END_REQUEST(UNKNOWN_ROLE); the records that still
    arrive for that id are ignored, and the id can be used again."""
    begin, params, stdin = target.request()
    conn = target.connect()
    try:
        conn.send(_begin(1, role=UNKNOWN_ROLE) + params + stdin)
        rejected = _read_responses(conn, [1])[1]
        if rejected.protocol_status != ProtocolStatus.UNKNOWN_ROLE:
            raise ProbeFailure(f"protocolStatus {rejected.protocol_status}, not UNKNOWN_ROLE")
        if rejected.stdout:
            raise ProbeFailure("STDOUT sent for a rejected role")
        conn.send(begin + params + stdin)
        status = _completed(_read_responses(conn, [1])[1])
    finally:
        conn.close()
    return f"UNKNOWN_ROLE, then the id served again ({status})"


def check_keep_conn(target: _Target) -> str:
    """§3.5: with FCGI_KEEP_CONN the connection serves request after request."""
    conn = target.connect()
    try:
        for _ in range(3):
            conn.send(b"".join(target.request(keep=True)))
            _completed(_read_responses(conn, [1])[1])
    finally:
        conn.close()
    return "3 requests on one connection"


def check_close_without_keep_conn(target: _Target) -> str:
    """§3.5: without FCGI_KEEP_CONN the application closes after END_REQUEST."""
    conn = target.connect()
    try:
        conn.send(b"".join(target.request(keep=False)))
        _completed(_read_responses(conn, [1])[1])
        if not conn.closed():
            raise ProbeFailure("more records after END_REQUEST instead of a close")
    finally:
        conn.close()
    return "closed after END_REQUEST"


def check_multiplexing(target: _Target) -> str:
    """§3.3, §5.5: two interleaved requests both complete (FCGI_MPXS_CONNS=1), or the second is
    refused with CANT_MPX_CONN (a server that does not multiplex)."""
    one, two = target.request(1), target.request(2)
    conn = target.connect()
    try:
        conn.send(one[0] + two[0] + two[1] + one[1] + two[2] + one[2])
        responses = _read_responses(conn, [1, 2])
    finally:
        conn.close()
    _completed(responses[1], 1)
    if responses[2].protocol_status == ProtocolStatus.CANT_MPX_CONN:
        return "not multiplexing: the second request got CANT_MPX_CONN"
    _completed(responses[2], 2)
    return "2 interleaved requests completed"


def check_abort(target: _Target) -> str:
    """§5.4: ABORT_REQUEST in the middle of STDIN is answered with END_REQUEST."""
    begin, params, _ = target.request(body=bytes(1000))
    conn = target.connect()
    try:
        conn.send(begin + params + encode_record(RecordType.STDIN, 1, bytes(10)))
        conn.send(encode_record(RecordType.ABORT_REQUEST, 1))
        response = _read_responses(conn, [1])[1]
    finally:
        conn.close()
    return f"END_REQUEST (protocolStatus {response.protocol_status}) after ABORT_REQUEST"


def check_padding(target: _Target) -> str:
    """§3.3: padding of any length (0-255) is skipped."""
    pairs = encode_params(target.params())
    begin = struct.pack(">HB5x", Role.RESPONDER, KEEP_CONN)
    for padding in (0, 3, 255):
        data = (
            _record(RecordType.BEGIN_REQUEST, 1, begin, padding)
            + _record(RecordType.PARAMS, 1, pairs, padding)
            + _record(RecordType.PARAMS, 1, b"", padding)
            + _record(RecordType.STDIN, 1, b"", padding)
        )
        _one_request(target, data)
    return "padding of 0, 3 and 255 bytes"


def check_split_records(target: _Target) -> str:
    """§3.3: records arriving one byte at a time (headers, contents and padding all split)."""
    data = b"".join(target.request())
    conn = target.connect()
    try:
        if conn.sock.family != socket.AF_UNIX:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one byte a segment
        for index in range(len(data)):
            conn.send(data[index : index + 1])
        _completed(_read_responses(conn, [1])[1])
    finally:
        conn.close()
    return f"{len(data)} bytes sent one at a time"


def check_big_params(target: _Target) -> str:
    """§3.4: a 4-byte length pair longer than a record, straddling PARAMS records."""
    extra = {"HTTP_X_PROBE": "p" * BIG_PARAM}
    return f"{BIG_PARAM}-byte value: status " + _one_request(
        target, b"".join(target.request(extra=extra))
    )


def check_split_pair(target: _Target) -> str:
    """§3.3: a name-value pair cut in the middle by a record boundary."""
    begin, _, stdin = target.request()
    pairs = encode_params(target.params())
    cut = len(pairs) // 2 + 1
    params = (
        encode_record(RecordType.PARAMS, 1, pairs[:cut])
        + encode_record(RecordType.PARAMS, 1, pairs[cut:])
        + encode_record(RecordType.PARAMS, 1)
    )
    return "status " + _one_request(target, begin + params + stdin)


def check_big_body(target: _Target) -> str:
    """§6.2: a 1 MiB STDIN body in full-size records."""
    return f"{BIG_BODY}-byte body: status " + _one_request(
        target, b"".join(target.request(body=bytes(BIG_BODY)))
    )


def check_inactive_id(target: _Target) -> str:
    """§3.3: records for a request id that is not active are ignored."""
    stray = encode_record(RecordType.STDIN, 7, b"stray") + encode_record(RecordType.PARAMS, 9)
    return "status " + _one_request(target, stray + b"".join(target.request()))


def check_get_values_mid_request(target: _Target) -> str:
    """§4.1: GET_VALUES may arrive at any time, also while a request is in progress."""
    begin, params, stdin = target.request()
    conn = target.connect()
    try:
        query = encode_record(RecordType.GET_VALUES, 0, encode_params([(b"FCGI_MPXS_CONNS", b"")]))
        conn.send(begin + params + query)
        rtype, _ = conn.management()
        if rtype != RecordType.GET_VALUES_RESULT:
            raise ProbeFailure(f"answered with record type {rtype}")
        conn.send(stdin)
        status = _completed(_read_responses(conn, [1])[1])
    finally:
        conn.close()
    return f"answered during a request; the request completed ({status})"


def check_bad_version(target: _Target) -> str:
    """§3.3: a record with version 2 is a protocol error: the connection is closed."""
    conn = target.connect()
    try:
        conn.send(_HEADER.pack(2, RecordType.BEGIN_REQUEST, 1, 8, 0) + bytes(8))
        if not conn.closed():
            raise ProbeFailure("the connection stayed open and records came back")
    finally:
        conn.close()
    return "connection closed"


Check = Callable[[_Target], str]

CHECKS: dict[str, Check] = {
    "responder": check_responder,
    "get-values": check_get_values,
    "get-values-mid-request": check_get_values_mid_request,
    "unknown-type": check_unknown_type,
    "unknown-role": check_unknown_role,
    "keep-conn": check_keep_conn,
    "close-without-keep-conn": check_close_without_keep_conn,
    "multiplexing": check_multiplexing,
    "abort": check_abort,
    "padding": check_padding,
    "split-records": check_split_records,
    "split-pair": check_split_pair,
    "big-params": check_big_params,
    "big-body": check_big_body,
    "inactive-id": check_inactive_id,
    "bad-version": check_bad_version,
}


def run_checks(
    address: Address,
    names: Sequence[str] | None = None,
    *,
    path: str = "/",
    timeout: float = 5.0,
) -> list[CheckResult]:
    """Run the named checks (all by default) against ``address``, in order."""
    target = _Target(address, path, timeout)
    results = []
    for name in names or list(CHECKS):
        check = CHECKS[name]
        try:
            results.append(CheckResult(name, True, check(target)))
        except ProbeFailure as failure:
            results.append(CheckResult(name, False, str(failure)))
    return results


# -- the command -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smisk-probe",
        description="Run FastCGI 1.0 conformance checks against a FastCGI application socket.",
    )
    parser.add_argument("address", nargs="?", help="HOST:PORT, [::1]:PORT or unix:/path")
    parser.add_argument("--path", default="/", help="the path every check requests (default: /)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per wait (default: 5)")
    parser.add_argument("--check", action="append", choices=list(CHECKS), help="run only this")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smisk-probe``: 0 when every check passed, 1 if one failed, 2 on misuse."""
    parser = _parser()
    options = parser.parse_args(argv)
    if options.list:
        for name, check in CHECKS.items():
            print(f"{name:24} {(check.__doc__ or '').splitlines()[0]}")
        return EXIT_ALL_PASSED
    if not options.address:
        parser.error("missing ADDRESS")
    try:
        address = parse_address(options.address)
    except ValueError as error:
        parser.error(str(error))
    results = run_checks(address, options.check, path=options.path, timeout=options.timeout)
    if options.json:
        print(
            json.dumps([{"check": r.name, "passed": r.passed, "detail": r.detail} for r in results])
        )
    else:
        for result in results:
            print(f"{'PASS' if result.passed else 'FAIL'}  {result.name:24} {result.detail}")
        passed = sum(r.passed for r in results)
        print(f"{passed} of {len(results)} checks passed")
    return EXIT_ALL_PASSED if all(r.passed for r in results) else EXIT_SOME_FAILED


if __name__ == "__main__":
    sys.exit(main())
