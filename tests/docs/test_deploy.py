"""The deployment recipes of docs/deploy/, run as written against Debian's web servers.

Each test reads its recipe blocks from the page (tests/docs/support.py), substitutes only ports,
paths, the application (``app:App`` becomes the echo app) and the ``smisk-serve`` program (this
checkout's interpreter), and runs the real server in the foreground. A missing server binary is
an error, not a skip: scripts/install-system-deps installs every one.
"""

from __future__ import annotations

import grp
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smisk.probe import run_checks
from tests.docs.support import (
    ROOT,
    apache_conf,
    binary,
    caddy_command,
    free_port,
    http,
    lighttpd_conf,
    nginx_conf,
    python_env,
    recipe,
    server,
    shared_dir,
    substitute,
    wait_http,
)
from tests.serve.support import ServeProcess, wait_until

APP = "tests.docs.apps:Echo"
SMISK = f"{sys.executable} -m smisk"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the web servers' www-data workers can enter (sockets, temp files)."""
    path = shared_dir("smisk-deploy-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def smisk_argv(page: str, name: str, replacements: dict[str, str]) -> list[str]:
    """The recipe's smisk-serve command line, runnable here."""
    line = substitute(recipe(page, name).strip(), {"app:App": APP, **replacements})
    argv = shlex.split(line)
    assert argv[0] in ("smisk-serve", "/usr/local/bin/smisk-serve"), argv
    return argv[1:]


def start_smisk(argv: list[str]) -> ServeProcess:
    proc = ServeProcess(argv, ROOT, env=python_env())
    proc.wait_for("ready: ")
    return proc


def check_front_end(url: str, software: str) -> dict[str, object]:
    """Path, query and body reach the app; returns the echo of a POST."""
    status, _, body = http(url + "/a/b%20c?x=1&y=%C3%A9")
    assert status == 200, body
    echo = json.loads(body)
    assert (echo["method"], echo["path"], echo["query"]) == ("GET", "/a/b c", "x=1&y=%C3%A9")
    assert software in str(echo["server_software"]), echo
    payload = os.urandom(300_000)
    status, _, body = http(url + "/upload", data=payload)
    echo = json.loads(body)
    assert status == 200 and echo["method"] == "POST" and echo["body"] == len(payload), echo
    return dict(echo)


def established_to(port: int) -> int:
    """TCP connections now established to 127.0.0.1:PORT (from any process)."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", "dst", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.splitlines())


# -- nginx -------------------------------------------------------------------------------------


def run_nginx(workdir: Path, site: str) -> tuple[int, Iterator[subprocess.Popen[bytes]]]:
    port = free_port()
    site = substitute(site, {"listen 80;": f"listen 127.0.0.1:{port};"})
    site = site.replace("include fastcgi_params;", "include /etc/nginx/fastcgi_params;")
    conf = nginx_conf(workdir, site)
    return port, server([binary("nginx"), "-p", str(workdir), "-c", str(conf)])


def test_nginx_unix_socket(workdir: Path) -> None:
    sock = str(workdir / "app.sock")
    argv = smisk_argv("deploy/nginx.md", "smisk-unix", {"/run/smisk/app.sock": sock})
    site = substitute(recipe("deploy/nginx.md", "nginx-unix"), {"/run/smisk/app.sock": sock})
    site = substitute(site, {"/srv/files/": f"{workdir}/"})
    with start_smisk(argv):
        info = os.stat(sock)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == grp.getgrnam("www-data").gr_gid
        port, nginx = run_nginx(workdir, site)
        with nginx as proc:
            url = f"http://127.0.0.1:{port}"
            wait_http(url, proc)
            check_front_end(url, "nginx/")
            assert http(url + "/protected/nginx.conf")[0] == 404  # internal only


def test_nginx_tcp_keeps_a_pool_of_connections(workdir: Path) -> None:
    backend = free_port()
    argv = smisk_argv("deploy/nginx.md", "smisk-tcp", {"127.0.0.1:5000": f"127.0.0.1:{backend}"})
    site = substitute(
        recipe("deploy/nginx.md", "nginx-tcp"), {"127.0.0.1:5000": f"127.0.0.1:{backend}"}
    )
    with start_smisk(argv):
        port, nginx = run_nginx(workdir, site)
        with nginx as proc:
            url = f"http://127.0.0.1:{port}"
            wait_http(url, proc)
            check_front_end(url, "nginx/")
            for _ in range(10):
                assert http(url + "/again")[0] == 200
            # The pool keeps idle connections open between requests (keepalive 32).
            assert 1 <= established_to(backend) <= 2 * 32


# -- Apache httpd ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_apache_mod_proxy_fcgi(workdir: Path, transport: str) -> None:
    page = "deploy/apache.md"
    if transport == "unix":
        sock = str(workdir / "app.sock")
        argv = smisk_argv(page, "smisk-unix", {"/run/smisk/app.sock": sock})
        site = substitute(recipe(page, "apache-unix"), {"/run/smisk/app.sock": sock})
    else:
        backend = f"127.0.0.1:{free_port()}"
        argv = smisk_argv(page, "smisk-tcp", {"127.0.0.1:5000": backend})
        site = substitute(recipe(page, "apache-tcp"), {"127.0.0.1:5000": backend})
    port = free_port()
    conf = apache_conf(workdir, port, site)
    with start_smisk(argv), server([binary("apache2"), "-f", str(conf), "-DFOREGROUND"]) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, proc)
        check_front_end(url, "Apache/2")


# -- lighttpd ----------------------------------------------------------------------------------


def test_lighttpd_socket(workdir: Path) -> None:
    page = "deploy/lighttpd.md"
    sock = str(workdir / "app.sock")
    argv = smisk_argv(page, "smisk-unix", {"/run/smisk/app.sock": sock})
    snippet = substitute(recipe(page, "lighttpd-socket"), {"/run/smisk/app.sock": sock})
    port = free_port()
    conf = lighttpd_conf(workdir, port, snippet, username="www-data")
    with start_smisk(argv), server([binary("lighttpd"), "-D", "-f", str(conf)]) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, proc)
        check_front_end(url, "lighttpd/")


def test_lighttpd_bin_path_starts_and_stops_smisk(workdir: Path) -> None:
    page = "deploy/lighttpd.md"
    snippet = substitute(
        recipe(page, "lighttpd-bin-path"),
        {
            "/run/lighttpd/smisk.sock": str(workdir / "smisk.sock"),
            "/usr/local/bin/smisk-serve": SMISK,
            "app:App": APP,
            "/srv/app": str(ROOT),
        },
    )
    port = free_port()
    conf = lighttpd_conf(workdir, port, snippet)
    with server([binary("lighttpd"), "-D", "-f", str(conf)], env=python_env()) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, proc)
        echo = check_front_end(url, "lighttpd/")
    worker = int(str(echo["pid"]))
    wait_until(lambda: not _alive(worker), what=f"smisk worker {worker} to stop with lighttpd")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- Caddy -------------------------------------------------------------------------------------


def test_caddy_reverse_proxy_fastcgi(workdir: Path) -> None:
    page = "deploy/caddy.md"
    sock = str(workdir / "app.sock")
    argv = smisk_argv(page, "smisk-unix", {"/run/smisk/app.sock": sock})
    port = free_port()
    site = substitute(
        recipe(page, "caddyfile"),
        {"example.org": f"http://127.0.0.1:{port}", "/run/smisk/app.sock": sock},
    )
    command, env = caddy_command(workdir, site)
    with start_smisk(argv), server(command, env=env, cwd=workdir) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, proc)
        check_front_end(url, "Caddy/")


# -- spawn-fcgi --------------------------------------------------------------------------------


def test_spawn_fcgi_hands_over_a_socket_every_probe_check_passes_on(workdir: Path) -> None:
    sock = str(workdir / "app.sock")
    line = substitute(
        recipe("deploy/spawn-fcgi.md", "spawn-fcgi").strip(),
        {"/run/smisk/app.sock": sock, "/usr/local/bin/smisk-serve": SMISK, "app:App": APP},
    )
    argv = shlex.split(line)
    argv[0] = binary(argv[0])
    with ServeProcess(argv[1:], ROOT, command=argv[:1], env=python_env()) as proc:
        proc.wait_for("ready: ")
        info = os.stat(sock)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == grp.getgrnam("www-data").gr_gid
        results = run_checks(sock, timeout=5)
        assert all(r.passed for r in results), [r for r in results if not r.passed]
        proc.signal(signal.SIGTERM)
        assert proc.wait(30) == 0


# -- systemd -----------------------------------------------------------------------------------


def unit_text(workdir: Path) -> str:
    return substitute(
        recipe("deploy/systemd.md", "smisk.service"),
        {
            "/usr/local/bin/smisk-serve": SMISK,
            "WorkingDirectory=/srv/app": f"WorkingDirectory={ROOT}",
        },
    )


def unit_value(text: str, key: str) -> str:
    values = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]
    assert len(values) == 1, f"{key}= appears {len(values)} times"
    return values[0]


def test_systemd_unit_verifies_cleanly(workdir: Path) -> None:
    unit = workdir / "smisk.service"
    unit.write_text(unit_text(workdir))
    result = subprocess.run(
        [binary("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    broken = workdir / "broken.service"
    broken.write_text(unit_text(workdir).replace(sys.executable, "/nonexistent/python"))
    result = subprocess.run(
        [binary("systemd-analyze"), "verify", str(broken)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "not executable" in result.stderr  # verify does check


def test_systemd_exec_start_reload_and_stop(workdir: Path) -> None:
    text = unit_text(workdir)
    assert unit_value(text, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit_value(text, "KillSignal") == "SIGTERM"
    sock = str(workdir / "app.sock")
    argv = shlex.split(
        substitute(unit_value(text, "ExecStart"), {"/run/smisk/app.sock": sock, "app:App": APP})
    )
    with ServeProcess(argv[1:], ROOT, command=argv[:1], env=python_env()) as proc:
        proc.wait_for("ready: ")
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
        assert all(r.passed for r in run_checks(sock, ["responder", "keep-conn"]))
        proc.signal(signal.SIGHUP)
        proc.wait_for(r"generation 2 serving")
        assert run_checks(sock, ["responder"])[0].passed
        proc.signal(signal.SIGTERM)
        assert proc.wait(40) == 0
