"""Server-wide limits, timeouts and the peer allow-list, with safe defaults.

Rules: no I/O besides reading the environment in ``ServerLimits.from_environ``; every default
carries its reason. The protocol's own bounds (params bytes and count, requests per connection)
are ``smisk.protocol.Limits``; the form parsers' bounds live on ``Request``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "AUTO_ACCEPTORS",
    "Network",
    "ServerLimits",
    "accepts_one_per_pass",
    "is_allowed",
    "parse_allow_from",
    "parse_size",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MIB = 1024 * 1024
GIB = 1024 * MIB
AUTO_ACCEPTORS = 8  # accepting servers per socket on uvloop (benchmarks/README.md: 2-32 tried)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one server process holds itself to; exceeding one is logged with its name."""

    # Requests in flight in this process (all connections): above it new requests get
    # "503 Service Unavailable" with Retry-After (nginx turns END_REQUEST OVERLOADED into a 502).
    max_requests: int = 1024
    # Bytes of one request body, counted while it streams in: 413 and the handler is stopped.
    # Well above any form limit, it bounds what a raw-body handler or spool can be made to take.
    max_body_size: int = GIB
    # Seconds between BEGIN_REQUEST and the end of PARAMS: a peer that begins and goes quiet
    # holds a slot; nginx sends both in one write.
    params_timeout: float = 30.0
    # Seconds without a byte of an unfinished request body while the server is reading (not
    # paused by a slow handler): nginx's fastcgi_send_timeout is 60 s.
    body_timeout: float = 60.0
    # A response header block above this is logged: nginx's default fastcgi_buffer_size (4 KiB
    # on x86-64) cannot hold it and nginx answers 502.
    header_warn_size: int = 4096
    # SO_SNDBUF of a unix-socket connection, set when it carries its first large response
    # (bytes; 0: the kernel's default of about 208 KiB). The kernel doubles it and caps it at
    # net.core.wmem_max. A response that fits is handed to the web server in one write and the
    # handler goes on, instead of waiting for the web server to read the first 208 KiB.
    # Connections with only small responses skip the system call; TCP keeps its autotuning.
    send_buffer: int = MIB
    # Accepting servers per listening socket (0: automatic). uvloop (libuv) takes one connection
    # from a listening socket per loop pass; a web server that opens a connection per request
    # beyond its keep-alive pool then leaves hundreds waiting in the backlog behind the pooled
    # ones (p99 of 100-300 ms at 256 clients). Each extra server, on a duplicate of the socket,
    # takes one more per pass; one that finds the backlog empty costs a failed accept(2).
    # Automatic is AUTO_ACCEPTORS on uvloop and 1 on asyncio's loop, which empties the backlog.
    acceptors: int = 0
    # Peers allowed to connect (FCGI_WEB_SERVER_ADDRS, --allow-from); empty means everyone.
    # When set, peers that are not TCP (unix sockets) are refused, as the FastCGI spec says.
    allow_from: tuple[Network, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServerLimits:
        """Defaults overridden by ``FCGI_WEB_SERVER_ADDRS``, ``SMISK_ALLOW_FROM``,
        ``SMISK_MAX_REQUESTS_IN_FLIGHT``, ``SMISK_MAX_BODY_SIZE``, ``SMISK_PARAMS_TIMEOUT``,
        ``SMISK_BODY_TIMEOUT``, ``SMISK_SEND_BUFFER`` and ``SMISK_ACCEPTORS``. Raises ``ValueError`` naming a
        malformed variable."""
        env = os.environ if environ is None else environ
        limits = cls()
        allowed = ",".join(
            filter(None, (env.get("FCGI_WEB_SERVER_ADDRS"), env.get("SMISK_ALLOW_FROM")))
        )
        if allowed:
            limits = replace(limits, allow_from=parse_allow_from(allowed))
        numbers: dict[str, tuple[str, Callable[[str], Any]]] = {
            "SMISK_MAX_REQUESTS_IN_FLIGHT": ("max_requests", int),
            "SMISK_MAX_BODY_SIZE": ("max_body_size", parse_size),
            "SMISK_PARAMS_TIMEOUT": ("params_timeout", float),
            "SMISK_BODY_TIMEOUT": ("body_timeout", float),
            "SMISK_SEND_BUFFER": ("send_buffer", parse_size),
            "SMISK_ACCEPTORS": ("acceptors", int),
        }
        for variable, (field, kind) in numbers.items():
            if env.get(variable):
                try:
                    limits = replace(limits, **{field: kind(env[variable])})
                except ValueError:
                    raise ValueError(f"{variable}={env[variable]!r} is not a number") from None
        return limits


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """Bytes from ``"1048576"``, ``"512k"``, ``"10M"``, ``"1G"`` (also ``KiB``/``MB``...: all
    binary multiples). Raises ``ValueError`` for anything else, negative sizes included."""
    cleaned = text.strip().lower().removesuffix("b").removesuffix("i")
    number, unit = cleaned.rstrip("kmg"), cleaned[len(cleaned.rstrip("kmg")) :]
    if not number.isdigit() or unit not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (bytes, or a number with k, M or G)")
    return int(number) * _SIZE_UNITS[unit]


def parse_allow_from(text: str) -> tuple[Network, ...]:
    """Parse addresses and CIDR networks separated by commas or white space:
    ``"127.0.0.1, 10.0.0.0/8 ::1 fd00::/8"``. Raises ``ValueError`` naming the bad entry."""
    networks: list[Network] = []
    for entry in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return tuple(networks)


def is_allowed(peer: object, networks: tuple[Network, ...]) -> bool:
    """True when ``peer`` (a transport's ``peername``) may connect under ``networks``.

    An empty ``networks`` allows everyone. Otherwise only TCP peers whose address lies in one
    of them are allowed; an IPv4 peer on a dual-stack socket (``::ffff:a.b.c.d``) is matched as
    IPv4.
    """
    if not networks:
        return True
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return False  # a unix socket peer ('' or bytes) or an unknown transport
    try:
        address = ipaddress.ip_address(peer[0].partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def accepts_one_per_pass(loop: object) -> bool:
    """True for loops that take one connection from a listening socket per pass (uvloop: libuv
    since 1.45); asyncio's own loops accept the whole backlog at once."""
    return type(loop).__module__.startswith("uvloop")
