"""Front-end normalisation of FastCGI params, shared by WSGI, ASGI and the classic Request.url.

Rules: bytes in, bytes out; no I/O, no decoding (each interface decodes the way its spec says).
``HTTP_PROXY`` is dropped (httpoxy: a client header must never look like configuration);
duplicate ``HTTP_*`` params are merged (nginx before 1.23 sends one param per header line).
SCRIPT_NAME and PATH_INFO are decided here and only here (``split_path``): from what the front
end meant, judged against the request's own path, never from the mere presence of a param.
``X-Forwarded-*`` headers count only when REMOTE_ADDR is a proxy the operator named.
A Host nginx sent without its port gets nginx's port back (``request_host``), so that absolute
URLs and redirects built from it point where the client connected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote_from_bytes, unquote_to_bytes

from smisk.server.limits import Network, is_allowed, parse_allow_from

__all__ = [
    "NO_PROXIES",
    "PathSplit",
    "TrustedProxies",
    "client_address",
    "merge_params",
    "mount_prefix",
    "request_host",
    "request_path",
    "server_name",
    "split_path",
    "url_scheme",
]

PathSplit = tuple[bytes, bytes, bytes]  # (script_name, path_info, raw_path)

_ABSOLUTE_FORMS = (b"http://", b"https://")
_TRUE_HTTPS = (b"1", b"yes")  # besides anything starting with "on" (classic Smisk's test)
_SCHEMES = (b"http", b"https")
UNKNOWN_PORT = b"0"  # a forwarded client's port: X-Forwarded-For does not carry one
_DEFAULT_PORTS = {"http": b"80", "https": b"443"}
# nginx's $host (Debian's fastcgi_params: HTTP_HOST $host) never has a port; other front ends
# pass the client's Host header, whose missing port means the scheme's default.
_HOST_WITHOUT_PORT = (b"nginx/",)


def merge_params(params: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The params as a dict: duplicate ``HTTP_*`` values joined, ``HTTP_PROXY`` dropped.

    Cookies are joined with ``"; "`` (RFC 6265 §5.4), every other header with ``", "``
    (RFC 9110 §5.3); a duplicate of any other param replaces the earlier value.
    """
    env = dict(params)
    if len(env) != len(params):  # duplicates (nginx before 1.23): merge them in order
        env = {}
        for name, value in params:
            if name in env and name.startswith(b"HTTP_"):
                separator = b"; " if name == b"HTTP_COOKIE" else b", "
                env[name] = env[name] + separator + value
            else:
                env[name] = value
    env.pop(b"HTTP_PROXY", None)
    return env


# -- SCRIPT_NAME and PATH_INFO ------------------------------------------------------------------


ROOT_MOUNT = b"/"  # ``--mount /``: the application is at the root, whatever the front end split


def mount_prefix(prefix: str) -> bytes:
    """A mount prefix as SCRIPT_NAME bytes: ``"/app/"`` -> ``b"/app"``, ``""`` -> ``b""`` (none).

    ``"/"`` gives ``ROOT_MOUNT``: mounted at the root, so the front end's split is ignored
    (lighttpd's ``"/"`` without ``fix-root-scriptname`` splits off the first path segment).
    """
    if prefix and not prefix.strip("/"):
        return ROOT_MOUNT
    raw = prefix.encode("utf-8").rstrip(b"/")
    if raw and not raw.startswith(b"/"):
        raw = b"/" + raw
    return raw


def request_path(env: dict[bytes, bytes]) -> bytes:
    """The path of REQUEST_URI as the client sent it (still percent-encoded), or b""."""
    path = env.get(b"REQUEST_URI", b"").partition(b"?")[0].partition(b"#")[0]
    if path.startswith(_ABSOLUTE_FORMS):  # absolute-form request target: drop scheme://authority
        slash = path.find(b"/", path.index(b"//") + 2)
        path = path[slash:] if slash >= 0 else b"/"
    return path


def _is_script_name(script: bytes) -> bool:
    """A SCRIPT_NAME that ends at a segment boundary of the path it prefixes."""
    return not script.endswith(b"/")


def _judge_split(script: bytes, info: bytes, path: bytes) -> tuple[bytes, bytes]:
    """The split a front end meant, given the decoded request path (rule 2 of split_path)."""
    if not info.startswith(b"/"):  # no PATH_INFO, an empty one, or not a path: no split
        return b"", path
    if script + info == path and _is_script_name(script):
        return script, info
    if script and _is_script_name(script) and path.startswith(script + b"/"):
        return script, path[len(script) :]  # front end normalised PATH_INFO: the request's wins
    stripped = path[: len(path) - len(info)]
    if len(info) < len(path) and path.endswith(info) and _is_script_name(stripped):
        return stripped, info  # the front end stripped the mount point (Caddy's handle_path)
    return b"", path


def split_path(env: dict[bytes, bytes], mount: bytes = b"") -> PathSplit:
    """SCRIPT_NAME and PATH_INFO (percent-decoded bytes) plus the raw path.

    P is the REQUEST_URI path, percent-decoded (``%2F`` becomes ``/``; the raw path keeps the
    client's encoding); S and I are the SCRIPT_NAME and PATH_INFO params.

    1. ``mount`` given (``--mount PREFIX``): (``mount``, rest of P) when P is ``mount`` or
       starts with ``mount + "/"``, else ("", P); ``ROOT_MOUNT`` (``--mount /``) gives
       ("", P). The front end's params are not consulted.
    2. REQUEST_URI present, I a non-empty path (starts with ``/``):
       a. S + I == P and S is "" or does not end with ``/``: (S, I), the front end's split;
       b. P starts with S + ``/`` (S not empty): (S, rest of P) -- the front end merged
          slashes, resolved dot segments or rewrote inside its mount point;
       c. P ends with I and what precedes it does not end with ``/``: (that prefix, I) --
          the front end stripped the mount point from the path (Caddy ``handle_path``).
       Anything else, and a missing or empty I (nginx ``fastcgi_params``; Debian's
       ``snippets/fastcgi-php.conf`` sends ``PATH_INFO=""`` with S == P): ("", P).
    3. No REQUEST_URI: (S, I) as sent when I is non-empty, else ("", S).

    The joined S + I of the result is always P (the whole path) unless rule 3 applies.
    """
    raw = request_path(env)
    script, info = env.get(b"SCRIPT_NAME", b""), env.get(b"PATH_INFO", b"")
    if not raw:  # rule 3 (or 1 without REQUEST_URI): the params are all there is
        path = script + info
        encoded = quote_from_bytes(path, "/").encode("ascii")
        if mount or not info:
            return (*_mounted(path, mount), encoded)
        return script, info, encoded
    path = unquote_to_bytes(raw)
    if mount:
        return (*_mounted(path, mount), raw)
    return (*_judge_split(script, info, path), raw)


def _mounted(path: bytes, mount: bytes) -> tuple[bytes, bytes]:
    """Rule 1 of split_path; with no ``mount`` or ``ROOT_MOUNT``, the whole path is PATH_INFO."""
    if mount and mount != ROOT_MOUNT and (path == mount or path.startswith(mount + b"/")):
        return mount, path[len(mount) :]
    return b"", path


# -- scheme and client behind proxies ----------------------------------------------------------


def _ip(text: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from REMOTE_ADDR or an X-Forwarded-For entry (``[v6]`` brackets allowed)."""
    try:
        return ipaddress.ip_address(text.strip().strip(b"[]").decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The peers whose ``X-Forwarded-Proto``/``X-Forwarded-For`` headers are believed.

    Built with ``TrustedProxies.parse("127.0.0.1, 10.0.0.0/8")`` or ``parse("*")`` (every
    peer). The default, ``NO_PROXIES``, trusts nobody: the headers are then ignored.
    """

    networks: tuple[Network, ...] = ()
    everyone: bool = False

    @classmethod
    def parse(cls, spec: str | Iterable[str] | TrustedProxies | None) -> TrustedProxies:
        """From ``--forwarded-allow-ips``: addresses and CIDR networks separated by commas or
        white space, or ``*``. Raises ``ValueError`` naming a bad entry."""
        if spec is None or isinstance(spec, TrustedProxies):
            return spec or NO_PROXIES
        text = spec if isinstance(spec, str) else ",".join(spec)
        entries = text.replace(",", " ").split()
        if "*" in entries:
            return cls(everyone=True)
        return cls(parse_allow_from(" ".join(entries))) if entries else NO_PROXIES

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks)

    def trusts(self, address: bytes) -> bool:
        """True when ``address`` (REMOTE_ADDR or a forwarded hop) is a trusted proxy."""
        if self.everyone:
            return True
        ip = _ip(address) if self.networks else None
        return ip is not None and is_allowed((str(ip),), self.networks)


NO_PROXIES = TrustedProxies()


def _header_list(value: bytes) -> list[bytes]:
    return [item.strip() for item in value.split(b",") if item.strip()]


def _forwarded_by_trusted(env: dict[bytes, bytes], trusted: TrustedProxies) -> bool:
    return bool(trusted) and trusted.trusts(env.get(b"REMOTE_ADDR", b""))


def url_scheme(env: dict[bytes, bytes], trusted: TrustedProxies = NO_PROXIES) -> str:
    """``"https"`` or ``"http"``.

    ``"https"`` when the front end says so (HTTPS ``on...``, ``1`` or ``yes``, or
    REQUEST_SCHEME ``https``): the front end is always believed. Otherwise, when REMOTE_ADDR is
    a trusted proxy, the last entry of X-Forwarded-Proto if it is http or https.
    """
    https = env.get(b"HTTPS", b"").lower()
    if https.startswith(b"on") or https in _TRUE_HTTPS:
        return "https"
    if env.get(b"REQUEST_SCHEME", b"").lower() == b"https":
        return "https"
    if _forwarded_by_trusted(env, trusted):
        forwarded = _header_list(env.get(b"HTTP_X_FORWARDED_PROTO", b""))
        if forwarded and forwarded[-1].lower() in _SCHEMES:
            return forwarded[-1].lower().decode("ascii")
    return "http"


def client_address(
    env: dict[bytes, bytes], trusted: TrustedProxies = NO_PROXIES
) -> tuple[bytes, bytes]:
    """``(host, port)``: REMOTE_ADDR and REMOTE_PORT, or the client a trusted proxy named in
    X-Forwarded-For -- the rightmost address that is not itself a trusted proxy (the leftmost
    when all are), with port ``b"0"`` (the header carries none).

    An X-Forwarded-For entry that is not an IP address leaves REMOTE_ADDR in place.
    """
    host, port = env.get(b"REMOTE_ADDR", b""), env.get(b"REMOTE_PORT", b"")
    if not _forwarded_by_trusted(env, trusted):
        return host, port
    hops = _header_list(env.get(b"HTTP_X_FORWARDED_FOR", b""))
    client = next((hop for hop in reversed(hops) if not trusted.trusts(hop)), None)
    if client is None and hops:
        client = hops[0]
    address = _ip(client) if client is not None else None
    if address is None:
        return host, port
    return str(address).encode("ascii"), UNKNOWN_PORT


def _has_port(host: bytes) -> bool:
    return b":" in host.rpartition(b"]")[2]  # "[::1]" is a bare IPv6 host, "[::1]:8080" is not


def request_host(env: dict[bytes, bytes], trusted: TrustedProxies = NO_PROXIES) -> bytes:
    """HTTP_HOST, with SERVER_PORT appended when nginx dropped the client's port.

    Debian's nginx ``fastcgi_params`` sends ``HTTP_HOST $host``, the host without its port; an
    application building a URL from it (a redirect, ``url_for(_external=True)``) then points a
    client of ``:8080`` at port 80. The port nginx listens on is the one the client used unless
    it is the scheme's default, or a trusted proxy changed the scheme (its port is not known
    here); then the Host stays as sent. Other front ends (SERVER_SOFTWARE not ``nginx/``) pass
    the client's own Host, which stays as it is; so does an empty Host.
    """
    host = env.get(b"HTTP_HOST", b"")
    port = env.get(b"SERVER_PORT", b"")
    if not host or _has_port(host) or not port.isdigit():
        return host
    if not env.get(b"SERVER_SOFTWARE", b"").startswith(_HOST_WITHOUT_PORT):
        return host
    own_scheme = url_scheme(env)
    if port == _DEFAULT_PORTS[own_scheme]:
        return host
    if trusted and url_scheme(env, trusted) != own_scheme:  # without proxies: the same scheme
        return host
    return host + b":" + port


def server_name(env: dict[bytes, bytes]) -> bytes:
    """SERVER_NAME, else SERVER_ADDR (an IPv6 address in brackets), else empty: the host of a
    URL for a request without a Host. nginx sends an empty SERVER_NAME when the ``server`` has
    no ``server_name``."""
    name = env.get(b"SERVER_NAME", b"")
    if name:
        return name
    address = env.get(b"SERVER_ADDR", b"")
    return b"[" + address + b"]" if b":" in address else address
