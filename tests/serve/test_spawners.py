"""Launchers that hand over the listening socket on fd 0: spawn-fcgi and lighttpd's bin-path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.serve.support import ROOT, ServeProcess, fcgi_get, smisk_env, wait_until, write_app
from tests.support.nginx import free_port

SPAWN_FCGI = shutil.which("spawn-fcgi") or "/usr/bin/spawn-fcgi"
LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"


@pytest.mark.skipif(not os.path.exists(SPAWN_FCGI), reason="no spawn-fcgi")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_spawn_fcgi_hands_the_socket_over_on_fd_0(tmp_path: Path, workers: str) -> None:
    write_app(tmp_path)
    sock = str(tmp_path / "spawned.sock")
    command = [SPAWN_FCGI, "-n", "-s", sock, "--", sys.executable, "-m", "smisk"]
    with ServeProcess(["app:App", "--workers", workers], tmp_path, command=command) as server:
        server.wait_for("ready: ")
        assert fcgi_get(sock, "/spawned").startswith("v1 pid=")
        assert "path=/spawned" in fcgi_get(sock, "/spawned")


LIGHTTPD_CONF = """
server.modules = ("mod_fastcgi")
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/error.log"
server.pid-file = "{root}/lighttpd.pid"
fastcgi.server = ( "/" => ((
    "socket" => "{root}/app.sock",
    "bin-path" => "{root}/run-app",
    "bin-copy-environment" => ("PATH", "PYTHONPATH", "SMISK_NO_EXTENSIONS", "SMISK_EXTENSION"),
    "max-procs" => 1,
    "check-local" => "disable",
)))
"""


@pytest.mark.skipif(not os.path.exists(LIGHTTPD), reason="no lighttpd")
def test_lighttpd_bin_path_starts_the_app_with_the_socket_on_fd_0(tmp_path: Path) -> None:
    write_app(tmp_path)
    launcher = tmp_path / "run-app"
    launcher.write_text(f"#!/bin/sh\ncd {tmp_path}\nexec {sys.executable} -m smisk app:App\n")
    launcher.chmod(0o755)
    port = free_port()
    conf = tmp_path / "lighttpd.conf"
    conf.write_text(LIGHTTPD_CONF.format(root=tmp_path, port=port))
    env = smisk_env(PYTHONPATH=ROOT)
    proc = subprocess.Popen([LIGHTTPD, "-D", "-f", str(conf)], env=env, stdin=subprocess.DEVNULL)
    try:
        body = wait_until(lambda: _get(f"http://127.0.0.1:{port}/via-lighttpd"), what="lighttpd")
        assert body.startswith("v1 pid=") and "path=/via-lighttpd" in body
    finally:
        proc.terminate()
        proc.wait(15)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode() if response.status == 200 else None
    except OSError:
        return None
