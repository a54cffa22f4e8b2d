"""Who may read the status page (--status-allow): the REMOTE_ADDR the front end sends must lie in
the allowed networks; by default loopback and clients without one (unix). Checked on the
decision itself, in an embedded server, and through a real nginx whose client address comes
from X-Forwarded-For (the realip module), as behind a load balancer."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from smisk.runtime.ops import OpsConfig
from smisk.runtime.ops.status import DEFAULT_STATUS_ALLOW, StatusAccess
from tests.ops.support import Gate, gated, get, serve
from tests.serve.support import ServeProcess, run_cli, smisk_env
from tests.support.nginx import Nginx

ROOT = Path(__file__).resolve().parents[2]
needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx"
)
# nginx takes the client address from X-Forwarded-For when the request comes from 127.0.0.1.
REAL_IP = "set_real_ip_from 127.0.0.1;\n    real_ip_header X-Forwarded-For;"


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [
        (b"127.0.0.1", True),
        (b"127.9.8.7", True),
        (b"::1", True),
        (b"::ffff:127.0.0.1", True),
        (None, True),
        (b"", True),
        (b"unix:", True),
        (b"10.0.0.5", False),
        (b"203.0.113.7", False),
        (b"2001:db8::1", False),
        (b"not-an-address", False),
    ],
)
def test_default_allows_only_this_machine(remote: bytes | None, allowed: bool) -> None:
    assert StatusAccess.parse(DEFAULT_STATUS_ALLOW).allows(remote) is allowed


def test_a_list_replaces_the_default() -> None:
    access = StatusAccess.parse("10.0.0.0/8, 2001:db8::/32")
    assert access.allows(b"10.1.2.3") and access.allows(b"2001:db8::5")
    assert not access.allows(b"127.0.0.1") and not access.allows(None)
    assert StatusAccess.parse("10.0.0.0/8 unix").allows(None)
    assert StatusAccess.parse("0.0.0.0/0,::/0").allows(b"198.51.100.1")


def test_a_bad_entry_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"status allow list: .*'10\.0\.0\.300'"):
        OpsConfig(status_path="/status", status_allow="127.0.0.1,10.0.0.300")


async def test_embedded_status_refuses_a_remote_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock = tmp_path / "s.sock"
    async with serve(gated(Gate()), sock, status_path="/status"):
        with caplog.at_level(logging.INFO, logger="smisk.ops"):
            refused = await get(sock, "/status", REMOTE_ADDR="203.0.113.7")
        headers, body = refused.split()
        assert headers["status"] == "403 Forbidden" and b"pid" not in body
        assert "status page refused to 203.0.113.7" in caplog.text
        headers, body = (await get(sock, "/status", REMOTE_ADDR="127.0.0.1")).split()
        assert headers["status"].startswith("200") and json.loads(body)["pid"]
        assert (await get(sock, "/other", REMOTE_ADDR="203.0.113.7")).split()[1] == b"done /other\n"


async def test_embedded_status_allows_a_listed_network(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    async with serve(gated(Gate()), sock, status_path="/status", status_allow="203.0.113.0/24"):
        allowed = (await get(sock, "/status", REMOTE_ADDR="203.0.113.7")).split()
        assert allowed[0]["status"].startswith("200") and json.loads(allowed[1])["pid"]
        local = (await get(sock, "/status", REMOTE_ADDR="127.0.0.1")).split()
        assert local[0]["status"] == "403 Forbidden"


def start(tmp_path: Path, *args: str) -> tuple[ServeProcess, str]:
    sock = str(tmp_path / "app.sock")
    command = ["tests.ops.serve_app:App", "--bind", f"unix:{sock}", "--status-path", "/status"]
    return ServeProcess([*command, *args], ROOT, env=smisk_env()), sock


@needs_nginx
def test_status_through_nginx_answers_only_allowed_clients(tmp_path: Path) -> None:
    server, sock = start(tmp_path)
    with server, Nginx(tmp_path / "nginx", [sock], extra=REAL_IP) as nginx:
        server.wait_for("ready: serving")
        code, _, body = nginx.get("/status", headers={"X-Forwarded-For": "203.0.113.7"})
        assert code == 403 and b"pid" not in body
        code, _, body = nginx.get("/status?format=openmetrics")  # from 127.0.0.1
        assert code == 200 and b"smisk_requests_total" in body
        code, _, body = nginx.get("/page", headers={"X-Forwarded-For": "203.0.113.7"})
        assert code == 200 and body.startswith(b"pid=")  # only the status page is guarded
    assert "status page refused to 203.0.113.7" in server.log


@needs_nginx
def test_status_allow_exposes_the_page_to_a_network_through_nginx(tmp_path: Path) -> None:
    server, sock = start(
        tmp_path, "--status-allow", "127.0.0.1", "--status-allow", "203.0.113.0/24"
    )
    with server, Nginx(tmp_path / "nginx", [sock], extra=REAL_IP) as nginx:
        server.wait_for("ready: serving")
        code, _, body = nginx.get("/status", headers={"X-Forwarded-For": "203.0.113.7"})
        assert code == 200 and json.loads(body)["workers"] == 1
        code, _, _ = nginx.get("/status", headers={"X-Forwarded-For": "198.51.100.1"})
        assert code == 403


def test_a_bad_status_allow_is_one_line(tmp_path: Path) -> None:
    args = ["tests.ops.serve_app:App", "--bind", f"unix:{tmp_path / 'x.sock'}"]
    result = run_cli([*args, "--status-allow", "x/y"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'x/y'" in result.stderr
