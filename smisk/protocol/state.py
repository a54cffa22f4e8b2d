"""Per-request input states and the one transition table for each role. Rules: no I/O; data only.

A request moves through its input streams in the order its role defines:
RESPONDER PARAMS -> STDIN; AUTHORIZER PARAMS only; FILTER PARAMS -> STDIN -> DATA. A non-empty
record of the current stream stays in the state; the empty record that ends it moves on.
A (state, record type) pair missing from a role's table is a remote protocol error.
"""

from __future__ import annotations

from enum import Enum, IntEnum

from smisk.protocol.constants import RecordType, Role

__all__ = ["TRANSITIONS", "Action", "State"]


class State(IntEnum):
    """Where a request's input stands (an IntEnum: table lookups hash as fast as ints)."""

    PARAMS = 1  # reading the PARAMS stream
    STDIN = 2  # reading the request body
    DATA = 3  # reading FILTER's data stream
    INPUT_DONE = 4  # every input stream has ended; the app is answering
    ABORTED = 5  # the peer aborted; input is ignored until the app ends the request
    REFUSED = 6  # a limit refused the input; it is discarded until the app ends it


class Action(Enum):
    """What the connection does with a record."""

    PARAMS = "PARAMS"  # collect a PARAMS chunk (empty: the request is received)
    STDIN = "STDIN"  # emit Stdin (empty: StdinEnd)
    DATA = "DATA"  # emit Data (empty: DataEnd)
    ABORT = "ABORT"  # emit RequestAborted
    IGNORE = "IGNORE"  # drop the record silently


_P, _S, _D = RecordType.PARAMS, RecordType.STDIN, RecordType.DATA
_A = RecordType.ABORT_REQUEST

Transition = tuple[Action, State]  # (action, state once the stream's empty record ends it)

_AFTER_INPUT: dict[tuple[State, RecordType], Transition] = {
    (State.ABORTED, _P): (Action.IGNORE, State.ABORTED),
    (State.ABORTED, _S): (Action.IGNORE, State.ABORTED),
    (State.ABORTED, _D): (Action.IGNORE, State.ABORTED),
    (State.ABORTED, _A): (Action.IGNORE, State.ABORTED),
    (State.REFUSED, _P): (Action.IGNORE, State.REFUSED),
    (State.REFUSED, _S): (Action.IGNORE, State.REFUSED),
    (State.REFUSED, _D): (Action.IGNORE, State.REFUSED),
    (State.REFUSED, _A): (Action.ABORT, State.ABORTED),
    (State.INPUT_DONE, _A): (Action.ABORT, State.ABORTED),
}

TRANSITIONS: dict[Role, dict[tuple[State, RecordType], Transition]] = {
    Role.RESPONDER: {
        (State.PARAMS, _P): (Action.PARAMS, State.STDIN),
        (State.PARAMS, _A): (Action.ABORT, State.ABORTED),
        (State.STDIN, _S): (Action.STDIN, State.INPUT_DONE),
        (State.STDIN, _A): (Action.ABORT, State.ABORTED),
        **_AFTER_INPUT,
    },
    Role.AUTHORIZER: {
        (State.PARAMS, _P): (Action.PARAMS, State.INPUT_DONE),
        (State.PARAMS, _A): (Action.ABORT, State.ABORTED),
        # No body is defined for an authorizer, yet some front ends send an empty STDIN.
        (State.INPUT_DONE, _S): (Action.IGNORE, State.INPUT_DONE),
        **_AFTER_INPUT,
    },
    Role.FILTER: {
        (State.PARAMS, _P): (Action.PARAMS, State.STDIN),
        (State.PARAMS, _A): (Action.ABORT, State.ABORTED),
        (State.STDIN, _S): (Action.STDIN, State.DATA),
        (State.STDIN, _A): (Action.ABORT, State.ABORTED),
        (State.DATA, _D): (Action.DATA, State.INPUT_DONE),
        (State.DATA, _A): (Action.ABORT, State.ABORTED),
        **_AFTER_INPUT,
    },
}
