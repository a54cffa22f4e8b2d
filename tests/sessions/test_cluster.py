"""Two smisk-serve processes behind one nginx upstream (round-robin) share a RedisSessionStore."""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.support.nginx import Nginx
from tests.support.redis import RedisServer
from tests.support.serving import ROOT, wait_until

pytestmark = pytest.mark.nginx

REQUESTS = 200


def accepts(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
    except OSError:
        return False
    return True


@contextmanager
def smisk_serve(sock: Path, redis: RedisServer, key_prefix: str) -> Iterator[int]:
    """``smisk-serve tests.sessions.apps:RedisCounterApp --bind unix:<sock>``; yields its pid."""
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        SMISK_TEST_REDIS_URL=redis.url,
        SMISK_TEST_KEY_PREFIX=key_prefix,
    )
    command = [sys.executable, "-m", "smisk.cli", "tests.sessions.apps:RedisCounterApp"]
    proc = subprocess.Popen([*command, "--bind", f"unix:{sock}"], cwd=ROOT, env=env)
    try:
        wait_until(lambda: proc.poll() is not None or accepts(sock), 20, "smisk-serve")
        assert proc.poll() is None, f"smisk-serve exited with {proc.returncode}"
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


def test_two_servers_share_one_session(
    redis_server: RedisServer, sockdir: Path, tmp_path: Path
) -> None:
    sockets = [sockdir / "a.sock", sockdir / "b.sock"]
    prefix = f"cluster:{uuid.uuid4().hex}:"
    with ExitStack() as stack:
        pids = [stack.enter_context(smisk_serve(s, redis_server, prefix)) for s in sockets]
        nginx = stack.enter_context(Nginx(tmp_path / "nginx", [str(s) for s in sockets]))
        cookie, served_by = "", collections.Counter[int]()
        for expected in range(1, REQUESTS + 1):
            status, headers, body = nginx.get("/incr", headers={"Cookie": cookie})
            assert status == 200, body
            count, pid = map(int, body.split())
            assert count == expected
            served_by[pid] += 1
            if "Set-Cookie" in headers:
                assert expected == 1
                cookie = headers["Set-Cookie"].split(";")[0]
    assert set(served_by) == set(pids)
    assert min(served_by.values()) >= REQUESTS // 4  # round-robin: both take a fair share
