"""smisk-serve with the operations options: real worker processes, shared counters, SIGUSR1,
and nginx in front (503 from load shedding and 504 from the timeout pass through, never 502)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from smisk.runtime.ops import DEFAULT_MAX_QUEUE_TIME
from tests.serve.support import Load, ServeProcess, fcgi_get, pid_of, run_cli, smisk_env, wait_until
from tests.support.fcgi_client import FastCGIClient
from tests.support.nginx import Nginx

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.ops.serve_app:App"
needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx"
)


def start(tmp_path: Path, *args: str) -> tuple[ServeProcess, str]:
    sock = str(tmp_path / "app.sock")
    env = smisk_env(OPS_GATE=str(tmp_path / "gate"))
    server = ServeProcess([APP, "--bind", f"unix:{sock}", *args], ROOT, env=env)
    return server, sock


def status(sock: str, path: str = "/status") -> dict[str, Any]:
    with FastCGIClient(sock, timeout=20) as client:
        env = {"REQUEST_URI": path, "SCRIPT_NAME": path}
        _, body = client.request(params=env, keep_conn=False).split()
    return json.loads(body)  # type: ignore[no-any-return]


def sleeping_line() -> int:
    source = (Path(__file__).parent / "serve_app.py").read_text().splitlines()
    return next(n for n, line in enumerate(source, 1) if "# SLEEPING LINE" in line)


def test_counters_of_two_workers_add_up_and_outlive_a_worker(tmp_path: Path) -> None:
    server, sock = start(tmp_path, "--workers", "2", "--status-path", "/status")
    with server:
        server.wait_for("ready: 2 workers")
        load = Load(lambda i: fcgi_get(sock, f"/n{i}"), total=60, concurrency=6)
        load.join()
        assert not load.errors
        served_by = {pid_of(body) for body in load.results}
        answers = {}
        for _ in range(200):  # each worker answers for both (the kernel picks who accepts)
            document = status(sock)
            answers[document["pid"]] = document
            if len(answers) == 2 or len(served_by) == 1:
                break
        for document in answers.values():
            assert document["workers"] == 2 and document["requests"] == 60
            assert sum(w["requests"] for w in document["per_worker"]) == 60
            assert document["connections_accepted"] >= 60
        victim = min(served_by)
        subprocess.run(["kill", "-9", str(victim)], check=True)
        server.wait_for(rf"worker {victim} died")
        # the replacement is up once it serves (its signal handlers are installed by then)
        probes: list[str] = []

        def new_worker_serves() -> bool:
            probes.append(fcgi_get(sock, "/new"))
            return pid_of(probes[-1]) not in served_by

        wait_until(new_worker_serves, what="a new worker")
        after = status(sock)
        assert after["requests"] == 60 + len(probes)  # the dead worker's count stays in the total
        assert victim not in {w["pid"] for w in after["per_worker"]}


def test_status_and_slow_log_while_every_thread_sleeps(tmp_path: Path) -> None:
    server, sock = start(
        tmp_path, "--threads", "2", "--status-path", "/status", "--slow-request-timeout", "0.2"
    )
    with server:
        server.wait_for("ready: serving")
        load = Load(lambda i: fcgi_get(sock, "/block"), total=2, concurrency=2)
        try:
            busy = wait_until(lambda: (s := status(sock))["threads_busy"] == 2 and s)
            assert busy["threads"] == 2 and busy["requests_in_flight"] == 2
            server.wait_for(r"slow request \(", count=2)
        finally:
            (tmp_path / "gate").touch()
        load.join()
        assert not load.errors
    report = server.log[server.log.index("slow request") :]
    assert "GET /block" in report
    assert re.search(rf'serve_app\.py", line {sleeping_line()}, in service', report), report


def test_sigusr1_reopens_the_access_log(tmp_path: Path) -> None:
    log_file, moved = tmp_path / "access.log", tmp_path / "access.log.1"
    server, sock = start(
        tmp_path, "--workers", "2", "--access-log", "json", "--access-log-file", str(log_file)
    )
    with server:
        server.wait_for("ready: 2 workers")
        fcgi_get(sock, "/before")
        wait_until(lambda: log_file.exists() and "/before" in log_file.read_text())
        log_file.rename(moved)
        server.signal(signal.SIGUSR1)
        wait_until(log_file.exists, what="the reopened access log")
        wait_until(lambda: _reopened_by_both(server), what="both workers reopened")
        fcgi_get(sock, "/after")
        wait_until(lambda: "/after" in log_file.read_text())
    assert "/after" not in moved.read_text()
    assert [json.loads(line)["uri"] for line in log_file.read_text().splitlines()] == ["/after"]


def _reopened_by_both(server: ServeProcess) -> bool:
    # Each worker reopens on its own; a reopened writer has a new inode open. The access log
    # itself is the readiness signal: /proc shows which file each worker holds.
    from tests.serve.support import children_of

    targets = []
    for pid in children_of(server.proc.pid):
        fds = Path(f"/proc/{pid}/fd")
        targets.extend(
            str(p.readlink()) for p in fds.iterdir() if "access.log" in str(p.readlink())
        )
    return len(targets) == 2 and all(t.endswith("access.log") for t in targets)


@needs_nginx
def test_overload_is_503_and_timeout_504_through_nginx(tmp_path: Path) -> None:
    server, sock = start(
        tmp_path,
        "--threads", "1", "--max-queue", "1", "--request-timeout", "1.5",
        "--status-path", "/status", "--access-log", "combined",
    )  # fmt: skip
    with server, Nginx(tmp_path / "nginx", [sock]) as nginx:
        server.wait_for("ready: serving")
        load = Load(lambda i: nginx.get("/block"), total=2, concurrency=2)
        wait_until(lambda: status(sock)["requests_queued"] == 1, what="one queued request")
        code, headers, body = nginx.get("/shed")
        assert code == 503 and headers["Retry-After"] == "1", (code, headers, body)
        load.join()
        assert sorted(r[0] for r in load.results) == [504, 504]  # the running and the queued
        counts = status(sock)
        assert (counts["shed"], counts["timed_out_requests"]) == (1, 2)
        (tmp_path / "gate").touch()  # the timed-out thread returns; its late output is dropped
        wait_until(lambda: status(sock)["threads_busy"] == 0, what="the thread to return")
    assert "upstream" not in nginx.error_log()
    assert " 503 " in server.log and " 504 " in server.log


def test_a_bad_access_log_format_is_one_line(tmp_path: Path) -> None:
    result = run_cli([APP, "--bind", "unix:x.sock", "--access-log", "{nope}"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "nope" in result.stderr


def test_ops_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from smisk.cli import build_parser, config_from

    monkeypatch.setenv("SMISK_MAX_QUEUE", "7")
    monkeypatch.setenv("SMISK_ACCESS_LOG_FILE", "/tmp/a.log")
    monkeypatch.setenv("SMISK_ACCESS_LOG", "json")
    ops = config_from(build_parser().parse_args(["m:App"])).ops()
    assert (ops.max_queue, ops.access_log_file, ops.access_log) == (7, "/tmp/a.log", "json")
    ops = config_from(build_parser().parse_args(["m:App", "--max-queue", "0"])).ops()
    assert ops.max_queue == 0 and ops.max_queue_time == DEFAULT_MAX_QUEUE_TIME
    monkeypatch.setenv("SMISK_MAX_QUEUE_TIME", "0.25")
    assert config_from(build_parser().parse_args(["m:App"])).ops().max_queue_time == 0.25
    monkeypatch.delenv("SMISK_MAX_QUEUE")
    args = ["m:App", "--max-queue-time", "0"]
    assert not config_from(build_parser().parse_args(args)).ops().sheds
