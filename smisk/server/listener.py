"""Listening sockets: TCP (IPv4/IPv6), unix sockets, and the socket a web server hands over on fd 0.

Rules: blocking socket calls only at start-up and shut-down, never while serving. A unix socket file
is replaced when stale and removed on close (only if it is still ours).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import ipaddress
import os
import pwd
import socket
import stat
from dataclasses import dataclass

__all__ = ["Address", "Listener", "bind_listener", "inherited_listener", "parse_address"]

DEFAULT_BACKLOG = 1024  # Room for a burst of connections from a front end's many workers.
FCGI_LISTENSOCK_FILENO = 0  # The spec's fd for a listening socket handed to the application.


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed bind address: ``family`` is "tcp" or "unix"."""

    family: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_local(self) -> bool:
        """True for a unix socket or a loopback IP address: only this machine can connect.
        A wildcard (``:5000``) or a host name counts as reachable from elsewhere."""
        if self.family == "unix":
            return True
        if self.host == "localhost":
            return True
        try:
            address = ipaddress.ip_address(self.host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback

    def __str__(self) -> str:
        if self.family == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """Parse ``:5000``, ``*:5000``, ``127.0.0.1:5000``, ``[::1]:5000``, ``host:port``,
    ``unix:/path`` or a path. Raises ``ValueError`` for anything else."""
    if text.startswith("unix:"):
        return _unix_address(text[5:])
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"invalid address {text!r}: expected [ipv6]:port")
        return Address("tcp", host, _port(port, text))
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "/" not in text:
        return Address("tcp", "" if host in ("", "*") else host, _port(port, text))
    if "/" in text or (not sep and text):
        return _unix_address(text)
    raise ValueError(f"invalid address {text!r}: expected HOST:PORT, :PORT or a unix socket path")


def _unix_address(path: str) -> Address:
    if not path:
        raise ValueError("empty unix socket path")
    return Address("unix", path=path)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"invalid port in address {whole!r}")
    return int(text)


class Listener:
    """One listening socket and how to clean up after it."""

    def __init__(
        self,
        sock: socket.socket,
        address: Address,
        *,
        owns_path: bool = False,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.socket = sock
        self.address = address
        # asyncio calls listen() again when it starts serving; it must get this value, or its
        # default of 100 would refuse a burst of connections from a busy front end.
        self.backlog = backlog
        self._owned_inode = _inode(address.path) if owns_path else None

    @property
    def bound_address(self) -> Address:
        """The address actually bound (resolves port 0 to the port the system chose)."""
        if self.address.family == "unix":
            return self.address
        host, port = self.socket.getsockname()[:2]
        return Address("tcp", host, port)

    def close(self) -> None:
        """Close the socket; remove its unix socket file if we created it and it is unchanged."""
        self.socket.close()
        if self._owned_inode is not None and _inode(self.address.path) == self._owned_inode:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address.path)
        self._owned_inode = None


def _inode(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def bind_listener(
    address: str | Address,
    backlog: int = DEFAULT_BACKLOG,
    *,
    mode: int | None = None,
    owner: str | None = None,
) -> Listener:
    """Create, bind and listen on ``address``. For a unix socket, ``mode`` sets the file's
    permissions (e.g. ``0o660``) and ``owner`` its owner as ``USER``, ``USER:GROUP`` or
    ``:GROUP`` (names or numbers; changing the user needs privileges), both before ``listen``
    so no peer connects through looser settings."""
    parsed = parse_address(address) if isinstance(address, str) else address
    backlog = backlog if backlog > 0 else DEFAULT_BACKLOG
    if parsed.family == "unix":
        return _bind_unix(parsed, backlog, mode, owner)
    return Listener(_bind_tcp(parsed, backlog), parsed, backlog=backlog)


def parse_owner(owner: str) -> tuple[int, int]:
    """``USER[:GROUP]`` or ``:GROUP`` as ``(uid, gid)``; -1 leaves one unchanged. Raises
    ``ValueError`` for an unknown name."""
    user, _, group = owner.partition(":")
    try:
        uid = -1 if not user else int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        gid = -1 if not group else int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError as error:
        raise ValueError(f"unknown user or group in {owner!r}: {error}") from None
    return uid, gid


def _bind_tcp(address: Address, backlog: int) -> socket.socket:
    host = address.host or None
    flags = socket.AI_PASSIVE
    infos = socket.getaddrinfo(host, address.port, type=socket.SOCK_STREAM, flags=flags)
    if host is None:  # all interfaces: prefer one dual-stack IPv6 socket
        infos.sort(key=lambda info: info[0] != socket.AF_INET6)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host is None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(
    address: Address, backlog: int, mode: int | None, owner: str | None = None
) -> Listener:
    ids = parse_owner(owner) if owner else None
    _remove_stale_socket(address.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address.path)
        if ids is not None:
            os.chown(address.path, *ids)
        if mode is not None:
            os.chmod(address.path, mode)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return Listener(sock, address, owns_path=True, backlog=backlog)


def _remove_stale_socket(path: str) -> None:
    """Unlink a socket file nobody listens on; refuse to touch live sockets or other files."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path} is in use by a running server")


def inherited_listener(fd: int = FCGI_LISTENSOCK_FILENO) -> Listener | None:
    """Return the listening socket a web server handed over on ``fd``, or None if there is none."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        if not listening or sock.type != socket.SOCK_STREAM:
            sock.close()
            return None
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    if sock.family == socket.AF_UNIX:
        address = Address("unix", path=sock.getsockname() or f"fd:{fd}")
    else:
        host, port = sock.getsockname()[:2]
        address = Address("tcp", host, port)
    return Listener(sock, address)
