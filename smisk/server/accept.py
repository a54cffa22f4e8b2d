"""Taking the rest of a burst of connections off a listening socket at once.

Rules: runs on the event loop only and never blocks (listening sockets are non-blocking). Why it
exists: uvloop's servers accept one connection per loop iteration. When a web server opens more
connections than its keep-alive pool holds (every client past the pool costs a connect and a
close per request), hundreds wait in the backlog while the pooled connections are served at
once, and a request on a new connection waits there for hundreds of milliseconds. So each time
the loop's server accepts one, ``accept_waiting`` takes the rest of the backlog, up to
``ACCEPT_BATCH``, and ``start_transport`` gives each socket its transport. An empty backlog costs
one failed ``accept``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["ACCEPT_BATCH", "accept_waiting", "start_transport"]

# Connections taken per accept of the loop's server: a burst from a busy front end leaves the
# backlog within a few loop iterations, while requests on established connections still get
# their turn in between. With several workers on one socket, a bounded batch also leaves part of
# a burst to the other workers.
ACCEPT_BATCH = 64


def accept_waiting(
    sock: socket.socket, on_accept: Callable[[socket.socket], None], limit: int = ACCEPT_BATCH
) -> int:
    """Accept up to ``limit`` connections already waiting on ``sock`` and give each,
    non-blocking, to ``on_accept``. Returns how many were taken. Any error ends the batch
    quietly: the loop's own server meets and reports it on its next accept."""
    taken = 0
    while taken < limit:
        try:
            conn, _ = sock.accept()
        except ConnectionAbortedError:
            continue  # the peer gave up before we took it
        except OSError:
            break  # the backlog is empty (EAGAIN), or out of descriptors: the server reports it
        conn.setblocking(False)
        taken += 1
        on_accept(conn)
    return taken


def start_transport(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.Protocol],
    conn: socket.socket,
) -> None:
    """Give an accepted socket a transport and a protocol, as the loop's server would.

    ``connect_accepted_socket`` is a coroutine that sets everything up before its only wait
    (for ``connection_made``); it is stepped here by hand rather than wrapped in a Task: under a
    burst this runs for most connections, and a Task with its context and bookkeeping per
    connection was a measurable part of the cost of each request. If setting up fails (the peer
    already left), the socket is closed and nothing else happens.
    """
    steps = loop.connect_accepted_socket(protocol_factory, conn)
    try:
        waiter = steps.send(None)
    except StopIteration:
        return  # set up without waiting
    except Exception:
        conn.close()
        return
    waiter.add_done_callback(lambda _: _finish(steps, conn))


def _finish(steps: Coroutine[Any, Any, Any], conn: socket.socket) -> None:
    try:
        steps.send(None)
    except StopIteration:
        return
    except Exception:  # the waiter failed: the coroutine closed its transport
        conn.close()
