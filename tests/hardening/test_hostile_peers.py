"""Hostile and vanishing peers against a server in a child process: memory stays bounded, the
server keeps answering, and nothing is left behind (counted from /proc and the task set)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from smisk.protocol.records import encode_record
from tests.support.fcgi_client import (
    BEGIN,
    PARAMS,
    STDIN,
    FastCGIClient,
    begin_record,
    params_records,
    request_bytes,
)
from tests.support.serving import ROOT, rss_kib, tcp_address, wait_until

HALF_PARAMS = encode_record(PARAMS, 1, b"\x0b\x0cREQUEST_URI/hello?x=1234" + b"\x04" * 300)


@contextmanager
def probe_server(*, max_connections: int = 4096, **env: str) -> Iterator[Any]:
    """The probe server in a child process; yields (proc, address)."""
    child_env = dict(os.environ, PYTHONPATH=ROOT, **env)
    command = [sys.executable, "-m", "tests.hardening.serve_probe", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [*command, str(max_connections)], stdout=subprocess.PIPE, text=True, env=child_env, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), line
        yield proc, tcp_address(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def probe(address: tuple[str, int]) -> dict[str, Any]:
    with FastCGIClient(address) as client:
        _, body = client.request(params={"REQUEST_URI": "/probe"}).split()
    return json.loads(body)  # type: ignore[no-any-return]


def resources(pid: int) -> tuple[int, int]:
    """(open fds, threads) of process ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def served(address: tuple[str, int]) -> bool:
    with FastCGIClient(address) as client:
        return client.request(params={"REQUEST_URI": "/hello"}).split()[1] == b"Hello World!"


def test_1000_half_requests_keep_memory_bounded_and_a_fresh_request_is_served() -> None:
    with probe_server(SMISK_PARAMS_TIMEOUT="60") as (proc, address):
        assert served(address)
        before = rss_kib(proc.pid)
        peers = []
        for n in range(1000):
            sock = socket.create_connection(address)
            # Half a request: BEGIN_REQUEST and a PARAMS record that never ends (every other
            # one also cut mid-record), then silence.
            half = begin_record(1) + HALF_PARAMS
            sock.sendall(half if n % 2 else half[: len(half) - 100])
            peers.append(sock)
        wait_until(lambda: probe(address)["connections"] >= 1001, what="all accepted")
        assert served(address)
        grown = rss_kib(proc.pid) - before
        for sock in peers:
            sock.close()
        wait_until(lambda: probe(address)["connections"] == 1, what="all closed")
        state = probe(address)
    # ~10 KiB per idle connection at most (transport, protocol, buffers): bounded, not per byte.
    assert grown < 1000 * 30, f"RSS grew by {grown} KiB for 1000 half requests"
    assert state["request_tasks"] == 1  # only the probe itself


def test_flood_of_multiplexed_request_ids_is_bounded() -> None:
    with probe_server() as (_proc, address), FastCGIClient(address, timeout=30) as client:
        flood = b"".join(request_bytes(i, {"REQUEST_URI": "/hold?key=f"}) for i in range(1, 5001))
        client.send(flood)
        wait_until(lambda: probe(address)["request_tasks"] >= 129, what="requests to start")
        state = probe(address)
        assert state["request_tasks"] == 128 + 1  # max_requests_per_connection, plus the probe
        overloaded = 0
        while overloaded < 5000 - 128:
            rtype, _, content = client.read_record()  # type: ignore[misc]
            if rtype == 3:
                assert content[4] == 2  # END_REQUEST OVERLOADED
                overloaded += 1
        with FastCGIClient(address) as other:
            other.request(params={"REQUEST_URI": "/release?key=f"})
        done = sum(1 for _ in range(128) if client.read_response(_ids_left(client)).done)
        assert done == 128


def _ids_left(client: FastCGIClient) -> int:
    """The id of the next END_REQUEST on ``client`` (any of the held requests)."""
    while True:
        record = client.read_record()
        assert record is not None
        client._store(*record)
        if record[0] == 3:
            return record[1]


def test_a_vanishing_peer_leaves_no_task_thread_or_fd() -> None:
    with probe_server() as (proc, address):
        assert served(address)
        fds, threads = resources(proc.pid)
        tasks = probe(address)["tasks"]
        for _ in range(20):
            sock = socket.create_connection(address)
            sock.sendall(request_bytes(1, {"REQUEST_URI": "/wait-abort"}))
            sock.recv(100)  # the handler is running and has written
            sock.close()
            sock = socket.create_connection(address)
            sock.sendall(begin_record(1) + params_records(1, {"REQUEST_URI": "/sha256"}))
            sock.sendall(encode_record(STDIN, 1, b"part of a body"))
            sock.close()
            sock = socket.create_connection(address)
            sock.sendall(encode_record(BEGIN, 1, b"\x00\x01\x01"))  # cut mid-record
            sock.close()
        wait_until(lambda: probe(address)["connections"] == 1, what="all gone")
        wait_until(lambda: probe(address)["tasks"] <= tasks, what="tasks to finish")
        wait_until(lambda: resources(proc.pid) <= (fds, threads), what="fds and threads")
