"""X-Forwarded-Proto / X-Forwarded-For: believed only from the proxies ``forwarded_allow_ips``
names, for WSGI (``wsgi.url_scheme``, REMOTE_ADDR), ASGI (``scheme``, ``client``) and the classic
``request.url`` scheme; HTTPS / REQUEST_SCHEME from the front end always count."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import smisk
from smisk.adapters.wsgi import WSGIHandler
from smisk.core import Application
from smisk.core.frontend import NO_PROXIES, TrustedProxies, client_address, url_scheme
from tests.adapters.conftest import Front
from tests.serve.support import ServeProcess, fcgi_get, run_cli

PROXIES = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, ::1")


# -- the rule, without a server -----------------------------------------------------------------


def test_parse_names_networks_or_everyone() -> None:
    assert not TrustedProxies.parse("") and not TrustedProxies.parse(None)
    assert TrustedProxies.parse("") is NO_PROXIES
    assert TrustedProxies.parse("*").everyone
    assert TrustedProxies.parse(["10.0.0.0/8", "::1"]) == TrustedProxies.parse("10.0.0.0/8 ::1")
    assert PROXIES.trusts(b"10.9.8.7") and PROXIES.trusts(b"::1")
    assert PROXIES.trusts(b"::ffff:127.0.0.1")  # IPv4 on a dual-stack socket
    assert not PROXIES.trusts(b"192.0.2.1")
    assert not PROXIES.trusts(b"unix:") and not PROXIES.trusts(b"")
    assert not NO_PROXIES.trusts(b"127.0.0.1")


def test_parse_refuses_a_bad_entry_by_name() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        TrustedProxies.parse("127.0.0.1, 10.0.0.300")


def env(remote: str = "10.0.0.2", **headers: str) -> dict[bytes, bytes]:
    params = {b"REMOTE_ADDR": remote.encode(), b"REMOTE_PORT": b"5555"}
    for name, value in headers.items():
        params[name.upper().encode()] = value.encode()
    return params


@pytest.mark.parametrize(
    ("params", "trusted", "scheme"),
    [
        (env(HTTP_X_FORWARDED_PROTO="https"), NO_PROXIES, "http"),
        (env("192.0.2.1", HTTP_X_FORWARDED_PROTO="https"), PROXIES, "http"),
        (env(HTTP_X_FORWARDED_PROTO="https"), PROXIES, "https"),
        (env(HTTP_X_FORWARDED_PROTO="HTTPS"), PROXIES, "https"),
        (env(HTTP_X_FORWARDED_PROTO="http, https"), PROXIES, "https"),  # the nearest hop's
        (env(HTTP_X_FORWARDED_PROTO="https, http"), PROXIES, "http"),
        (env(HTTP_X_FORWARDED_PROTO="gopher", HTTPS="on"), PROXIES, "https"),
        (env(HTTP_X_FORWARDED_PROTO="http", HTTPS="on"), PROXIES, "https"),  # front end wins
        (env(HTTP_X_FORWARDED_PROTO="http", REQUEST_SCHEME="https"), PROXIES, "https"),
        (env(HTTP_X_FORWARDED_PROTO="https", REQUEST_SCHEME="http"), PROXIES, "https"),  # nginx
        (env(HTTPS="on"), NO_PROXIES, "https"),
        (env(REQUEST_SCHEME="https"), NO_PROXIES, "https"),
        (env("192.0.2.1", HTTP_X_FORWARDED_PROTO="https"), TrustedProxies.parse("*"), "https"),
    ],
)
def test_scheme(params: dict[bytes, bytes], trusted: TrustedProxies, scheme: str) -> None:
    assert url_scheme(params, trusted) == scheme


@pytest.mark.parametrize(
    ("params", "trusted", "client"),
    [
        (env(HTTP_X_FORWARDED_FOR="203.0.113.9"), NO_PROXIES, (b"10.0.0.2", b"5555")),
        (env("192.0.2.1", HTTP_X_FORWARDED_FOR="203.0.113.9"), PROXIES, (b"192.0.2.1", b"5555")),
        (env(), PROXIES, (b"10.0.0.2", b"5555")),
        (env(HTTP_X_FORWARDED_FOR="203.0.113.9"), PROXIES, (b"203.0.113.9", b"0")),
        # The rightmost address that is not a trusted proxy: a client cannot push a fake one.
        (env(HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.9, 10.0.0.7"), PROXIES, (b"203.0.113.9", b"0")),
        (env(HTTP_X_FORWARDED_FOR="10.0.0.9, 127.0.0.1"), PROXIES, (b"10.0.0.9", b"0")),
        (env(HTTP_X_FORWARDED_FOR="1.1.1.1, 2.2.2.2"), TrustedProxies.parse("*"), (b"1.1.1.1", b"0")),
        (env(HTTP_X_FORWARDED_FOR="[2001:db8::1]"), PROXIES, (b"2001:db8::1", b"0")),
        (env(HTTP_X_FORWARDED_FOR="unknown"), PROXIES, (b"10.0.0.2", b"5555")),
    ],
)  # fmt: skip
def test_client(params: dict[bytes, bytes], trusted: TrustedProxies, client: Any) -> None:
    assert client_address(params, trusted) == client


# -- through a real socket: smisk.serve() with each interface -------------------------------------


def wsgi_report(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    report = {"scheme": environ["wsgi.url_scheme"], "client": environ["REMOTE_ADDR"]}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(report).encode()]


async def asgi_report(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    client = scope["client"][0] if scope["client"] else None
    body = json.dumps({"scheme": scope["scheme"], "client": client}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class ClassicReport(Application):
    """The classic API knows the client only from REMOTE_ADDR; the URL's scheme follows the rule."""

    def service(self) -> None:
        report = {"scheme": self.request.url.scheme, "client": self.request.env["REMOTE_ADDR"]}
        self.response(json.dumps(report))


APPS: dict[str, Any] = {"wsgi": wsgi_report, "asgi": asgi_report, "smisk": ClassicReport}
FORWARDED = {
    "REMOTE_ADDR": "10.0.0.2",
    "REMOTE_PORT": "5555",
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.9, 10.0.0.7",
}


async def report_of(
    interface: str, sock: Path, allow: str | tuple[str, ...], params: dict[str, str]
) -> dict[str, str]:
    app = APPS[interface]
    bind = f"unix:{sock}"
    async with smisk.serve(app, bind=bind, interface=interface, forwarded_allow_ips=allow):
        body = await asyncio.to_thread(fcgi_get, str(sock), "/who", **params)
    return json.loads(body)  # type: ignore[no-any-return]


@pytest.mark.parametrize("interface", ["wsgi", "asgi", "smisk"])
async def test_trusted_proxy_sets_scheme_and_client(interface: str, sockdir: Path) -> None:
    report = await report_of(interface, sockdir / "s.sock", "10.0.0.0/8", FORWARDED)
    client = "10.0.0.2" if interface == "smisk" else "203.0.113.9"
    assert report == {"scheme": "https", "client": client}


@pytest.mark.parametrize("interface", ["wsgi", "asgi", "smisk"])
@pytest.mark.parametrize("allow", [(), "192.0.2.0/24"])
async def test_other_peers_forwarded_headers_are_ignored(
    interface: str, allow: str | tuple[str, ...], sockdir: Path
) -> None:
    report = await report_of(interface, sockdir / "s.sock", allow, FORWARDED)
    assert report == {"scheme": "http", "client": "10.0.0.2"}


@pytest.mark.parametrize("interface", ["wsgi", "asgi", "smisk"])
async def test_front_end_https_is_always_honoured(interface: str, sockdir: Path) -> None:
    params = {"REMOTE_ADDR": "192.0.2.5", "REMOTE_PORT": "1", "HTTPS": "on"}
    report = await report_of(interface, sockdir / "s.sock", (), params)
    assert report == {"scheme": "https", "client": "192.0.2.5"}


async def test_serve_refuses_a_bad_entry() -> None:
    with pytest.raises(ValueError, match=r"'nope'"):
        smisk.serve(wsgi_report, bind="127.0.0.1:0", interface="wsgi", forwarded_allow_ips="nope")


def test_behind_a_real_nginx(front: Front) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    trusted, _ = front(WSGIHandler(wsgi_report, forwarded_allow_ips="127.0.0.1"))
    status, _, body = trusted.get("/who", headers=headers)
    assert status == 200 and json.loads(body) == {"scheme": "https", "client": "198.51.100.7"}
    untrusted, _ = front(WSGIHandler(wsgi_report))
    status, _, body = untrusted.get("/who", headers=headers)
    assert status == 200 and json.loads(body) == {"scheme": "http", "client": "127.0.0.1"}


# -- smisk-serve --------------------------------------------------------------------------------

CLI_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(environ["wsgi.url_scheme"] + " " + environ["REMOTE_ADDR"]).encode()]
"""


@pytest.mark.parametrize("how", ["option", "environment"])
def test_smisk_serve_option(how: str, tmp_path: Path, sockdir: Path) -> None:
    (tmp_path / "fwd.py").write_text(textwrap.dedent(CLI_APP))
    sock = sockdir / "cli.sock"
    args = ["fwd:app", "--bind", f"unix:{sock}"]
    variables = {"SMISK_FORWARDED_ALLOW_IPS": "10.0.0.0/8"} if how == "environment" else {}
    if how == "option":
        args += ["--forwarded-allow-ips", "10.0.0.0/8,192.0.2.1"]
    with ServeProcess(args, tmp_path, env=variables) as server:
        server.wait_for("ready")
        assert fcgi_get(str(sock), "/", **FORWARDED) == "https 203.0.113.9"
        assert fcgi_get(str(sock), "/", **(FORWARDED | {"REMOTE_ADDR": "192.0.2.9"})) == (
            "http 192.0.2.9"
        )


def test_smisk_serve_refuses_a_bad_entry_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "fwd.py").write_text(textwrap.dedent(CLI_APP))
    args = ["fwd:app", "--bind", "127.0.0.1:0", "--forwarded-allow-ips", "10.0.0.0/8,proxy"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "smisk-serve: error: --forwarded-allow-ips: not an IP address or network: 'proxy'"
    ]


def test_no_client_without_an_address() -> None:
    # A unix-socket HTTP front end may send no REMOTE_ADDR: nothing is trusted then.
    assert not PROXIES.trusts(b"")
    assert client_address({}, PROXIES) == (b"", b"")
