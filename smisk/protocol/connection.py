"""FastCGIConnection: one connection's protocol state, sans-IO.

Rules: bytes in (``receive_data``), events out; replies are queued for ``data_to_send``. No
sockets, no asyncio, no clocks. Management records (GET_VALUES, unknown types) are answered here;
requests with an unknown role or over a limit are refused here without bothering the layer above.
"""

from __future__ import annotations

import functools

from smisk.codec import decode_params, encode_params, read_request_head
from smisk.protocol.constants import KEEP_CONN, Limits, ProtocolStatus, RecordType, Role
from smisk.protocol.errors import LocalProtocolError, RemoteProtocolError
from smisk.protocol.events import (
    Data,
    DataEnd,
    Event,
    RequestAborted,
    RequestReceived,
    RequestRefused,
    Stdin,
    StdinEnd,
)
from smisk.protocol.records import (
    Content,
    RecordReader,
    encode_record,
    end_parts,
    stream_parts,
)
from smisk.protocol.state import TRANSITIONS, Action, State

__all__ = ["FastCGIConnection"]

_BEGIN_BODY_SIZE = 8  # role (2), flags (1), reserved (5)
_STATUS_HEADER_TOO_LARGE = 431  # HTTP "Request Header Fields Too Large"
_ROLE_BY_NUMBER = {int(role): role for role in Role}
# Enum members the receive path uses, bound once: reading a member off its class costs about
# 80 ns on Python 3.11, and a request passes several of these reads per record.
_BEGIN_REQUEST = int(RecordType.BEGIN_REQUEST)
_ACT_STDIN, _ACT_PARAMS, _ACT_DATA, _ACT_ABORT = (
    Action.STDIN,
    Action.PARAMS,
    Action.DATA,
    Action.ABORT,
)
_PARAMS, _STDIN, _INPUT_DONE, _ABORTED = State.PARAMS, State.STDIN, State.INPUT_DONE, State.ABORTED
_RESPONDER = Role.RESPONDER


@functools.lru_cache(maxsize=16)
def _management_values(max_conns: int, max_reqs: int, multiplex: bool) -> dict[bytes, bytes]:
    """The FCGI_GET_VALUES answers, computed once per configuration (not per connection)."""
    return {
        b"FCGI_MAX_CONNS": str(max_conns).encode(),
        b"FCGI_MAX_REQS": str(max_reqs).encode(),
        b"FCGI_MPXS_CONNS": b"1" if multiplex else b"0",
    }


class _Request:
    """What the connection knows of one active request id."""

    __slots__ = ("keep_conn", "params", "params_size", "role", "state", "stderr_sent", "table")

    def __init__(self, role: Role, keep_conn: bool) -> None:
        self.role = role
        self.keep_conn = keep_conn
        self.state = _PARAMS
        self.table = TRANSITIONS[role]
        self.params: list[Content] = []
        self.params_size = 0
        self.stderr_sent = False


class FastCGIConnection:
    """The application side of one FastCGI connection."""

    def __init__(self, limits: Limits | None = None, *, max_conns: int = 1024) -> None:
        self.limits = limits if limits is not None else Limits()
        self._reader = RecordReader()
        self._requests: dict[int, _Request] = {}
        self._outgoing: list[bytes | memoryview] = []
        self._closing = False
        self._broken: RemoteProtocolError | None = None
        multiplex = self.limits.multiplex
        reqs = max_conns * (self.limits.max_requests_per_connection if multiplex else 1)
        self._values = _management_values(max_conns, reqs, multiplex)

    # -- state the layer above reads ---------------------------------------------------------

    @property
    def active_requests(self) -> frozenset[int]:
        """Ids of the requests begun and not yet ended."""
        return frozenset(self._requests)

    @property
    def should_close(self) -> bool:
        """True once a request without FCGI_KEEP_CONN has ended and no other is active."""
        return self._closing and not self._requests

    @property
    def input_buffered(self) -> int:
        """Bytes received that do not yet form a whole record."""
        return self._reader.buffered

    def is_active(self, request_id: int) -> bool:
        """True while ``request_id`` has begun and not been ended."""
        return request_id in self._requests

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the peer; return the events they complete, in order.

        Raises ``RemoteProtocolError`` when the peer broke the protocol; the connection is then
        unusable and must be closed.
        """
        if self._broken is not None:
            raise self._broken
        limits = self.limits
        # A limit below one refuses every request: that refusal is the record path's.
        if (
            not self._requests
            and not self._reader.buffered
            and limits.max_requests_per_connection > 0
        ):
            head = read_request_head(data, limits.max_params_bytes, limits.max_params_count)
            if head is not None:
                return self._request_head(*head)
        events: list[Event] = []
        try:
            for record_type, request_id, content in self._reader.feed_until_error(data):
                if request_id == 0:
                    self._management_record(record_type, bytes(content))
                elif record_type == _BEGIN_REQUEST:
                    self._begin_request(request_id, bytes(content))
                else:
                    request = self._requests.get(request_id)
                    if request is not None:
                        self._request_record(request_id, request, record_type, content, events)
                    # Records for inactive ids are ignored (spec §3.3).
            if self._reader.failed is not None:
                raise self._reader.failed
        except RemoteProtocolError as error:
            self._broken = error
            raise
        return events

    def _request_head(
        self, request_id: int, flags: int, params: list[tuple[bytes, bytes]], input_done: bool
    ) -> list[Event]:
        """The events of a responder request's opening read whole by ``read_request_head``:
        what the record-by-record path below makes of the same bytes, in one step."""
        request = self._requests[request_id] = _Request(_RESPONDER, bool(flags & KEEP_CONN))
        received = RequestReceived(request_id, _RESPONDER, request.keep_conn, params)
        if input_done:
            request.state = _INPUT_DONE
            return [received, StdinEnd(request_id)]
        request.state = _STDIN
        return [received]

    def _management_record(self, record_type: int, content: bytes) -> None:
        if record_type != RecordType.GET_VALUES:
            body = bytes((record_type & 0xFF, 0, 0, 0, 0, 0, 0, 0))
            self._outgoing.append(encode_record(RecordType.UNKNOWN_TYPE, 0, body))
            return
        try:
            asked = decode_params(content)
        except ValueError as error:
            raise RemoteProtocolError(f"malformed GET_VALUES: {error}") from None
        answer = [(name, self._values[name]) for name, _ in asked if name in self._values]
        self._outgoing.append(encode_record(RecordType.GET_VALUES_RESULT, 0, encode_params(answer)))

    def _begin_request(self, request_id: int, content: bytes) -> None:
        if request_id in self._requests:
            raise RemoteProtocolError(f"BEGIN_REQUEST for active request id {request_id}")
        if len(content) != _BEGIN_BODY_SIZE:
            raise RemoteProtocolError(f"BEGIN_REQUEST body of {len(content)} bytes, expected 8")
        role, keep_conn = (content[0] << 8) | content[1], bool(content[2] & KEEP_CONN)
        refusal = self._refusal_for(role)
        if refusal is not None:
            self._end_record(request_id, 0, refusal)
            if not keep_conn:
                self._closing = True
            return
        self._requests[request_id] = _Request(_ROLE_BY_NUMBER[role], keep_conn)

    def _refusal_for(self, role: int) -> ProtocolStatus | None:
        if role not in _ROLE_BY_NUMBER:
            return ProtocolStatus.UNKNOWN_ROLE
        if self._requests and not self.limits.multiplex:
            return ProtocolStatus.CANT_MPX_CONN
        if len(self._requests) >= self.limits.max_requests_per_connection:
            return ProtocolStatus.OVERLOADED
        return None

    def _request_record(
        self,
        request_id: int,
        request: _Request,
        record_type: int,
        content: Content,
        events: list[Event],
    ) -> None:
        transition = request.table.get((request.state, record_type))  # type: ignore[arg-type]
        if transition is None:
            kind = _type_name(record_type)
            raise RemoteProtocolError(
                f"{kind} record for request {request_id} in state {request.state.name}"
            )
        action, state_after_end = transition
        if action is _ACT_STDIN:
            if content:
                events.append(Stdin(request_id, content))
            else:
                request.state = state_after_end
                events.append(StdinEnd(request_id))
        elif action is _ACT_PARAMS:
            self._params_record(request_id, request, content, state_after_end, events)
        elif action is _ACT_DATA:
            if content:
                events.append(Data(request_id, content))
            else:
                request.state = state_after_end
                events.append(DataEnd(request_id))
        elif action is _ACT_ABORT:
            request.state = _ABORTED
            events.append(RequestAborted(request_id))

    def _params_record(
        self,
        request_id: int,
        request: _Request,
        content: Content,
        state_after_end: State,
        events: list[Event],
    ) -> None:
        if content:
            request.params_size += len(content)
            if request.params_size > self.limits.max_params_bytes:
                self._refuse(request_id, request, "request parameters too large", events)
            else:
                request.params.append(content)
            return
        try:
            params = decode_params(b"".join(request.params))
        except ValueError as error:
            raise RemoteProtocolError(
                f"malformed PARAMS for request {request_id}: {error}"
            ) from None
        request.params = []
        if len(params) > self.limits.max_params_count:
            self._refuse(request_id, request, "too many request parameters", events)
            return
        request.state = state_after_end
        events.append(RequestReceived(request_id, request.role, request.keep_conn, params))
        if state_after_end is _INPUT_DONE:
            events.append(StdinEnd(request_id))

    def _refuse(self, request_id: int, request: _Request, reason: str, events: list[Event]) -> None:
        request.state = State.REFUSED
        request.params = []
        events.append(RequestRefused(request_id, _STATUS_HEADER_TOO_LARGE, reason))

    # -- output ------------------------------------------------------------------------------

    def _active(self, request_id: int) -> _Request:
        request = self._requests.get(request_id)
        if request is None:
            raise LocalProtocolError(f"request {request_id} is not active")
        return request

    def send_stdout(self, request_id: int, data: Content) -> None:
        """Queue ``data`` as STDOUT of an active request (split into records as needed)."""
        self._active(request_id)
        if data:
            self._outgoing += stream_parts(RecordType.STDOUT, request_id, data)

    def send_stderr(self, request_id: int, data: bytes) -> None:
        """Queue ``data`` as STDERR of an active request."""
        request = self._active(request_id)
        if data:
            request.stderr_sent = True
            self._outgoing += stream_parts(RecordType.STDERR, request_id, data)

    def end_request(
        self,
        request_id: int,
        app_status: int = 0,
        protocol_status: ProtocolStatus = ProtocolStatus.REQUEST_COMPLETE,
        data: bytes = b"",
    ) -> None:
        """Queue final STDOUT ``data``, close the output streams and queue END_REQUEST; the id
        becomes inactive."""
        request = self._active(request_id)
        self._outgoing += end_parts(
            request_id, data, app_status, protocol_status, request.stderr_sent
        )
        del self._requests[request_id]
        if not request.keep_conn:
            self._closing = True

    def _end_record(self, request_id: int, app_status: int, protocol_status: int) -> None:
        self._outgoing.append(_end_record(request_id, app_status, protocol_status))

    def data_to_send(self) -> bytes:
        """Return (and forget) every byte queued for the peer."""
        out = self._outgoing
        if not out:
            return b""
        data = out[0] if len(out) == 1 and isinstance(out[0], bytes) else b"".join(out)
        out.clear()
        return data

    def buffers_to_send(self) -> list[bytes | memoryview]:
        """Return (and forget) the queued output as buffers to write in order, uncopied."""
        out, self._outgoing = self._outgoing, []
        return out


def _end_record(request_id: int, app_status: int, protocol_status: int) -> bytes:
    body = (app_status & 0xFFFFFFFF).to_bytes(4, "big") + bytes((protocol_status, 0, 0, 0))
    return encode_record(RecordType.END_REQUEST, request_id, body)


def _type_name(record_type: int) -> str:
    try:
        return RecordType(record_type).name
    except ValueError:
        return f"type-{record_type}"
