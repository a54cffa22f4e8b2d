"""SCRIPT_NAME / PATH_INFO / root_path from the params real front ends send, for all three
interfaces: WSGI ``build_environ``, ASGI ``build_scope`` and the classic ``request.url``.

Each row is a param set as observed from a real server (the comment names its configuration)
and the split ``smisk.core.frontend.split_path`` must make of it; the interfaces must agree
with it and with each other. The rule itself is documented in docs/deploy/index.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smisk.adapters.asgi import build_scope
from smisk.adapters.wsgi import build_environ
from smisk.core.frontend import merge_params, mount_prefix, split_path
from smisk.core.http_request import _merge_params, _url_from_env


@dataclass(frozen=True)
class Case:
    """Params (as the front end sends them) and the split they must give."""

    name: str
    params: dict[bytes, bytes]
    script: bytes
    info: bytes
    raw: bytes
    mount: str = ""
    extra: dict[bytes, bytes] = field(default_factory=dict)

    def param_list(self) -> list[tuple[bytes, bytes]]:
        return [(b"REQUEST_METHOD", b"GET"), *self.params.items(), *self.extra.items()]


def uri(request_uri: bytes, script: bytes, info: bytes | None = None) -> dict[bytes, bytes]:
    params = {b"REQUEST_URI": request_uri, b"SCRIPT_NAME": script}
    if info is not None:
        params[b"PATH_INFO"] = info
    return params


CAF = "/café".encode()

CASES = [
    # nginx, Debian's fastcgi_params / fastcgi.conf: SCRIPT_NAME is $uri, no PATH_INFO.
    Case("nginx-params", uri(b"/x/y?q=1", b"/x/y"), b"", b"/x/y", b"/x/y"),
    Case("nginx-params-root", uri(b"/", b"/"), b"", b"/", b"/"),
    Case("nginx-params-utf8", uri(b"/caf%C3%A9", CAF), b"", CAF, b"/caf%C3%A9"),
    Case("nginx-params-2f", uri(b"/a%2Fb", b"/a/b"), b"", b"/a/b", b"/a%2Fb"),
    Case("nginx-params-trailing", uri(b"/t/", b"/t/"), b"", b"/t/", b"/t/"),
    Case(
        "nginx-conf",
        uri(b"/x", b"/x"),
        b"",
        b"/x",
        b"/x",
        extra={b"SCRIPT_FILENAME": b"/var/www/html/x", b"DOCUMENT_URI": b"/x"},
    ),
    # nginx, snippets/fastcgi-php.conf: PATH_INFO present but empty, SCRIPT_NAME the path.
    Case(
        "fastcgi-php",
        uri(b"/hello/w%C3%B6rld?x=1", "/hello/wörld".encode(), b""),
        b"",
        "/hello/wörld".encode(),
        b"/hello/w%C3%B6rld",
    ),
    Case("fastcgi-php-root", uri(b"/", b"/", b""), b"", b"/", b"/"),
    Case("fastcgi-php-trailing", uri(b"/t/", b"/t/", b""), b"", b"/t/", b"/t/"),
    Case(
        "fastcgi-php-split",
        uri(b"/index.php/x/y", b"/index.php", b"/x/y"),
        b"/index.php",
        b"/x/y",
        b"/index.php/x/y",
    ),
    # nginx, location /app/ with fastcgi_split_path_info ^(/app)(/.*)$.
    Case("nginx-split", uri(b"/app/x?q", b"/app", b"/x"), b"/app", b"/x", b"/app/x"),
    Case("nginx-split-slash", uri(b"/app/", b"/app", b"/"), b"/app", b"/", b"/app/"),
    Case("nginx-split-2f", uri(b"/app/a%2Fb", b"/app", b"/a/b"), b"/app", b"/a/b", b"/app/a%2Fb"),
    Case("nginx-split-utf8", uri(b"/app/caf%C3%A9", b"/app", CAF), b"/app", CAF, b"/app/caf%C3%A9"),
    # ... with merge_slashes: PATH_INFO comes from the normalised $uri, the path from the client.
    Case("nginx-split-merged", uri(b"/app//x", b"/app", b"/x"), b"/app", b"//x", b"/app//x"),
    # nginx internal rewrite /old/x -> /new/x: the client's path wins.
    Case("nginx-rewrite", uri(b"/old/x", b"/new/x"), b"", b"/old/x", b"/old/x"),
    Case("nginx-rewrite-split", uri(b"/old/x", b"/new", b"/y"), b"", b"/old/x", b"/old/x"),
    # nginx, a front controller: try_files $uri /index.php$uri; then split at .php.
    Case("front-controller", uri(b"/x", b"/index.php", b"/x"), b"", b"/x", b"/x"),
    # Apache mod_proxy_fcgi, ProxyPass "/" (FPM and GENERIC back-end types): no PATH_INFO.
    Case(
        "apache",
        uri(b"/x/y?q=1", b"/x/y"),
        b"",
        b"/x/y",
        b"/x/y",
        extra={b"SCRIPT_FILENAME": b"proxy:fcgi://127.0.0.1:5000/x/y"},
    ),
    Case(
        "apache-generic",
        uri(b"/x/y", b"/x/y"),
        b"",
        b"/x/y",
        b"/x/y",
        extra={b"SCRIPT_FILENAME": b"/x/y"},
    ),
    Case("apache-merged", uri(b"//dbl//x", b"/dbl/x"), b"", b"//dbl//x", b"//dbl//x"),
    # Apache ProxyPass "/app/" "fcgi://host/app/": the mount point is known only to smisk.
    Case(
        "apache-prefix",
        uri(b"/app/caf%C3%A9", b"/app" + CAF),
        b"",
        b"/app" + CAF,
        b"/app/caf%C3%A9",
    ),
    Case(
        "apache-prefix-mount",
        uri(b"/app/caf%C3%A9", b"/app" + CAF),
        b"/app",
        CAF,
        b"/app/caf%C3%A9",
        mount="/app",
    ),
    # lighttpd, "/" with "fix-root-scriptname" => "enable".
    Case("lighttpd-root", uri(b"/x/y?q=1", b"", b"/x/y"), b"", b"/x/y", b"/x/y"),
    Case("lighttpd-root-slash", uri(b"/", b"", b"/"), b"", b"/", b"/"),
    Case("lighttpd-root-merged", uri(b"//dbl//x", b"", b"/dbl/x"), b"", b"//dbl//x", b"//dbl//x"),
    # lighttpd, "/" without fix-root-scriptname: "/" alone is not split ...
    Case("lighttpd-plain-root", uri(b"/", b"/"), b"", b"/", b"/"),
    # ... but "/x/y" arrives as SCRIPT_NAME=/x PATH_INFO=/y, which no param set tells apart
    # from a real mount at /x: kept (docs/deploy/lighttpd.md asks for fix-root-scriptname).
    Case("lighttpd-plain-deep", uri(b"/x/y", b"/x", b"/y"), b"/x", b"/y", b"/x/y"),
    # ... and --mount / says the application is at the root: the front end's split is ignored.
    Case(
        "lighttpd-plain-deep-root-mount",
        uri(b"/x/y", b"/x", b"/y"),
        b"",
        b"/x/y",
        b"/x/y",
        mount="/",
    ),
    Case(
        "root-mount-no-uri",
        {b"SCRIPT_NAME": b"/x", b"PATH_INFO": b"/y"},
        b"",
        b"/x/y",
        b"/x/y",
        mount="/",
    ),
    # lighttpd, "/app" prefix: a split at the mount point.
    Case(
        "lighttpd-prefix",
        uri(b"/app/a%2Fb/c%20d?z", b"/app", b"/a/b/c d"),
        b"/app",
        b"/a/b/c d",
        b"/app/a%2Fb/c%20d",
    ),
    Case("lighttpd-prefix-bare", uri(b"/app", b"/app"), b"", b"/app", b"/app"),
    Case("lighttpd-prefix-bare-mount", uri(b"/app", b"/app"), b"/app", b"", b"/app", mount="/app"),
    # Caddy, transport fastcgi with split "" (or no split): everything is PATH_INFO.
    Case("caddy", uri(b"/x/y?q=1", b"", b"/x/y"), b"", b"/x/y", b"/x/y"),
    Case("caddy-root", uri(b"/", b"", b"/"), b"", b"/", b"/"),
    Case("caddy-2f", uri(b"/a%2Fb", b"", b"/a/b"), b"", b"/a/b", b"/a%2Fb"),
    Case("caddy-double", uri(b"//dbl//x", b"", b"//dbl//x"), b"", b"//dbl//x", b"//dbl//x"),
    # Caddy, split .php: like fastcgi-php.conf for other paths.
    Case("caddy-php", uri(b"/php/x", b"/php/x", b""), b"", b"/php/x", b"/php/x"),
    Case(
        "caddy-php-split",
        uri(b"/php/index.php/x", b"/php/index.php", b"/x"),
        b"/php/index.php",
        b"/x",
        b"/php/index.php/x",
    ),
    # Caddy, handle_path /app/*: the prefix is stripped from PATH_INFO, not from REQUEST_URI.
    Case("caddy-handle-path", uri(b"/app/x/y?q", b"", b"/x/y"), b"/app", b"/x/y", b"/app/x/y"),
    Case("caddy-handle-path-slash", uri(b"/app/", b"", b"/"), b"/app", b"/", b"/app/"),
    # mod_fcgid style: the script is part of the URL.
    Case("fcgid", uri(b"/app.fcgi/x", b"/app.fcgi", b"/x"), b"/app.fcgi", b"/x", b"/app.fcgi/x"),
    # An absolute-form request target.
    Case("absolute-form", uri(b"http://h:81/app/x?q", b"/app", b"/x"), b"/app", b"/x", b"/app/x"),
    # A client that sent UTF-8 unencoded.
    Case("raw-utf8", uri(CAF, CAF), b"", CAF, CAF),
    # PATH_INFO that is not a path, or a SCRIPT_NAME ending in "/": not a split.
    Case("info-not-a-path", uri(b"/ab", b"/a", b"b"), b"", b"/ab", b"/ab"),
    Case("script-trailing-slash", uri(b"/x", b"/", b"/x"), b"", b"/x", b"/x"),
    # --mount overrides whatever the front end split.
    Case(
        "mount-over-split",
        uri(b"/app/x", b"/app/x", b"/y"),
        b"/app",
        b"/x",
        b"/app/x",
        mount="/app/",
    ),
    Case("mount-elsewhere", uri(b"/apple", b""), b"", b"/apple", b"/apple", mount="/app"),
    # No REQUEST_URI: the params are all there is.
    Case(
        "no-uri-split", {b"SCRIPT_NAME": b"/s", b"PATH_INFO": b"/a b"}, b"/s", b"/a b", b"/s/a%20b"
    ),
    Case("no-uri-unsplit", {b"SCRIPT_NAME": b"/a b"}, b"", b"/a b", b"/a%20b"),
    Case("no-uri-empty-info", {b"SCRIPT_NAME": b"/a", b"PATH_INFO": b""}, b"", b"/a", b"/a"),
    Case("no-uri-mount", {b"SCRIPT_NAME": b"/app/x"}, b"/app", b"/x", b"/app/x", mount="/app"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_split_path(case: Case) -> None:
    env = merge_params(case.param_list())
    assert split_path(env, mount_prefix(case.mount)) == (case.script, case.info, case.raw)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_wsgi_environ(case: Case) -> None:
    environ = build_environ(case.param_list(), case.mount)
    assert environ["SCRIPT_NAME"] == case.script.decode("latin-1")
    assert environ["PATH_INFO"] == case.info.decode("latin-1")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_asgi_scope(case: Case) -> None:
    scope = build_scope(case.param_list(), case.mount)
    assert scope["root_path"] == case.script.decode()
    assert scope["path"] == (case.script + case.info).decode()
    assert scope["path"].startswith(scope["root_path"])
    assert scope["raw_path"] == case.raw


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_classic_url_path(case: Case) -> None:
    url = _url_from_env(_merge_params(case.param_list()))
    # The classic API has no mount point: its path is the whole path, whatever the split.
    assert url.path == (case.script + case.info).decode()


SEGMENT = st.sampled_from([b"", b"a", b"app", b"caf\xc3\xa9", b"%2F", b"x y", b".", b"index.php"])
PATHS = st.lists(SEGMENT, min_size=1, max_size=5).map(lambda parts: b"/" + b"/".join(parts))


@given(
    PATHS,
    st.one_of(st.none(), PATHS, st.just(b"")),
    st.one_of(st.none(), PATHS, st.just(b"")),
    st.sampled_from([b"", b"/app", b"/a"]),
)
def test_with_request_uri_the_split_joins_to_the_requested_path(
    path: bytes, script: bytes | None, info: bytes | None, mount: bytes
) -> None:
    # Whatever SCRIPT_NAME and PATH_INFO say, the result joined is the decoded REQUEST_URI path,
    # SCRIPT_NAME is empty or a segment-aligned prefix, and PATH_INFO is empty only at a mount.
    env = {b"REQUEST_URI": path + b"?q=1"}
    if script is not None:
        env[b"SCRIPT_NAME"] = unquote_to_bytes(quote_from_bytes(script))
    if info is not None:
        env[b"PATH_INFO"] = info
    got_script, got_info, raw = split_path(env, mount)
    assert got_script + got_info == unquote_to_bytes(path)
    assert raw == path
    assert got_script == b"" or (not got_script.endswith(b"/") and got_script.startswith(b"/"))
    assert got_info.startswith(b"/") or (got_info == b"" and got_script == mount != b"")
