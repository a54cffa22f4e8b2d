"""Front-end normalisation of FastCGI params, shared by the WSGI and ASGI adapters.

Rules: bytes in, bytes out; no I/O, no decoding (each interface decodes the way its spec says).
``HTTP_PROXY`` is dropped (httpoxy: a client header must never look like configuration);
duplicate ``HTTP_*`` params are merged (nginx before 1.23 sends one param per header line);
SCRIPT_NAME and PATH_INFO are rebuilt from REQUEST_URI when the front end did not split them.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes, unquote_to_bytes

__all__ = ["PathSplit", "merge_params", "mount_prefix", "request_path", "split_path", "url_scheme"]

PathSplit = tuple[bytes, bytes, bytes]  # (script_name, path_info, raw_path)

_ABSOLUTE_FORMS = (b"http://", b"https://")
_TRUE_HTTPS = (b"on", b"1", b"yes")


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


def mount_prefix(prefix: str) -> bytes:
    """A mount prefix as SCRIPT_NAME bytes: ``"/app/"`` -> ``b"/app"``, ``"/"`` -> ``b""``."""
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


def split_path(env: dict[bytes, bytes], mount: bytes = b"") -> PathSplit:
    """SCRIPT_NAME and PATH_INFO (percent-decoded bytes) plus the raw path.

    A front end that split the path sends PATH_INFO: that split is kept unless a ``mount``
    prefix is configured. Otherwise (nginx by default sends the whole path as SCRIPT_NAME) the
    application is mounted at ``mount``: SCRIPT_NAME is the prefix when the path starts with it
    (else empty) and PATH_INFO the rest of the decoded REQUEST_URI path.
    """
    raw = request_path(env)
    if b"PATH_INFO" in env and not mount:
        script, info = env.get(b"SCRIPT_NAME", b""), env[b"PATH_INFO"]
        return script, info, raw or quote_from_bytes(script + info, "/").encode("ascii")
    if raw:
        path = unquote_to_bytes(raw)
    else:
        path = env.get(b"SCRIPT_NAME", b"") + env.get(b"PATH_INFO", b"")
        raw = quote_from_bytes(path, "/").encode("ascii")
    if mount and (path == mount or path.startswith(mount + b"/")):
        return mount, path[len(mount) :], raw
    return b"", path, raw


def url_scheme(env: dict[bytes, bytes]) -> str:
    """``"https"`` when HTTPS is on (or REQUEST_SCHEME says so), else ``"http"``."""
    if env.get(b"HTTPS", b"").lower() in _TRUE_HTTPS:
        return "https"
    scheme = env.get(b"REQUEST_SCHEME", b"").lower()
    return "https" if scheme == b"https" else "http"
