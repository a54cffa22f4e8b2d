"""The process model with real processes: restarts, signals, generations, recycling."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.serve.support import (
    Load,
    ServeProcess,
    children_of,
    fcgi_get,
    pid_of,
    run_cli,
    smisk_env,
    wait_until,
    write_app,
)
from tests.support.fcgi_client import FastCGIClient, begin_record, params_records, stdin_records
from tests.support.nginx import Nginx

needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx"
)


def start(tmp_path: Path, *args: str, app: str = "app:App") -> tuple[ServeProcess, str]:
    write_app(tmp_path)
    sock = str(tmp_path / "app.sock")
    server = ServeProcess([app, "--bind", f"unix:{sock}", *args], tmp_path)
    return server, sock


def worker_pids(server: ServeProcess, count: int) -> set[int]:
    return wait_until(
        lambda: (pids := children_of(server.proc.pid)) and len(pids) == count and pids,
        what=f"{count} workers",
    )


class Timed:
    """Calls that remember when they started, to tell which ones overlapped an event."""

    def __init__(self, sock: str, path: str = "/") -> None:
        self.sock, self.path = sock, path
        self.started: dict[int, float] = {}
        self.failed: dict[int, float] = {}
        self.lock = threading.Lock()

    def __call__(self, index: int) -> str:
        begun = time.monotonic()
        with self.lock:
            self.started[index] = begun
        try:
            return fcgi_get(self.sock, self.path)
        except OSError:
            with self.lock:
                self.failed[index] = begun
            raise


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(tmp_path: Path) -> None:
    server, sock = start(tmp_path, "--workers", "2")
    with server:
        server.wait_for("ready: 2 workers")
        before = worker_pids(server, 2)
        calls = Timed(sock, "/sleep?s=0.02")
        load = Load(calls, total=400, concurrency=8)
        wait_until(lambda: load.done_count >= 100, what="100 requests")
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()  # requests begun before this may have reached the victim
        server.wait_for(rf"worker {victim} died \(killed by SIGKILL\); restarting")
        load.join()
        after = worker_pids(server, 2)
        assert victim not in after and len(after - before) == 1
        # Only requests that were already running when the worker died may fail.
        assert all(begun < killed_at for begun in calls.failed.values()), calls.failed
        assert len(load.errors) <= 8, load.errors
        assert len(load.results) >= 392
        assert pid_of(fcgi_get(sock)) in after
        server.signal(signal.SIGTERM)
        assert server.wait() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_a_two_second_request_finish(tmp_path: Path, workers: str) -> None:
    server, sock = start(tmp_path, "--workers", workers)
    with server:
        server.wait_for("ready:")
        outcome: list[Any] = []
        thread = threading.Thread(target=lambda: outcome.append(fcgi_get(sock, "/sleep?s=2")))
        thread.start()
        server.wait_for("sleeping pid=")
        began = time.monotonic()
        server.signal(signal.SIGTERM)
        thread.join(30)
        assert outcome and outcome[0].startswith("v1 pid="), server.log
        assert server.wait() == 0
        assert time.monotonic() - began >= 1.5
        assert not Path(sock).exists()


def test_sigquit_stops_at_once(tmp_path: Path) -> None:
    server, sock = start(tmp_path, "--workers", "2")
    with server:
        server.wait_for("ready:")
        errors: list[BaseException] = []

        def call() -> None:
            try:
                fcgi_get(sock, "/sleep?s=20")
            except OSError as error:
                errors.append(error)

        thread = threading.Thread(target=call)
        thread.start()
        server.wait_for("sleeping pid=")
        began = time.monotonic()
        server.signal(signal.SIGQUIT)
        server.wait(15)
        thread.join(15)
        assert time.monotonic() - began < 8
        assert errors


def test_ttin_and_ttou_add_and_remove_a_worker(tmp_path: Path) -> None:
    server, _ = start(tmp_path, "--workers", "2")
    with server:
        server.wait_for("ready: 2 workers")
        worker_pids(server, 2)
        server.signal(signal.SIGTTIN)
        worker_pids(server, 3)
        server.signal(signal.SIGTTOU)
        worker_pids(server, 2)
        server.signal(signal.SIGTERM)
        assert server.wait() == 0


def test_usr1_reopens_log_files(tmp_path: Path) -> None:
    write_app(tmp_path)
    log_path = tmp_path / "app.log"
    (tmp_path / "logged.py").write_text(
        "import logging\n"
        f"logging.getLogger('app').addHandler(logging.FileHandler({str(log_path)!r}))\n"
        "from app import App\n"
    )
    sock = str(tmp_path / "app.sock")
    with ServeProcess(["logged:App", "--bind", sock, "--workers", "2"], tmp_path) as server:
        server.wait_for("ready: 2 workers")
        for _ in range(4):
            fcgi_get(sock, "/log")
        assert log_path.read_text().count("logged by") == 4
        log_path.rename(tmp_path / "app.log.1")
        server.signal(signal.SIGUSR1)
        wait_until(lambda: log_path.exists(), what="both workers reopened app.log")
        # Each worker reopens on its own signal; keep asking until both wrote to the new file.
        wait_until(lambda: fcgi_get(sock, "/log") and len(_pids_in(log_path)) == 2, what="2 pids")


def _pids_in(path: Path) -> set[str]:
    return {line.split()[-1] for line in path.read_text().splitlines() if line}


def test_a_worker_that_cannot_start_stops_the_supervisor_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "from smisk.core import Application\n"
        "class App(Application):\n"
        "    def application_will_start(self):\n"
        "        raise RuntimeError('no database')\n"
    )
    result = run_cli(["bad:App", "--bind", str(tmp_path / "s.sock"), "--workers", "2"], tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("smisk-serve: error:") and "no database" in last


def test_classic_run_with_forks_maps_onto_workers(tmp_path: Path) -> None:
    write_app(tmp_path)
    sock = str(tmp_path / "classic.sock")
    (tmp_path / "classic.py").write_text(
        "import logging, smisk.core\n"
        "from app import App\n"
        "logging.basicConfig(level=logging.INFO)\n"
        f"smisk.core.bind({sock!r})\n"
        "app = App()\n"
        "app.forks = 1\n"
        "app.run()\n"
        "print('run returned', flush=True)\n"
    )
    command = [sys.executable, "classic.py"]
    with ServeProcess([], tmp_path, command=command, env=smisk_env()) as server:
        server.wait_for("ready: 2 workers")
        worker_pids(server, 2)
        assert fcgi_get(sock).startswith("v1")
        server.signal(signal.SIGTERM)
        assert server.wait() == 0


# -- through nginx ---------------------------------------------------------------------------


def nginx_get(nginx: Nginx, path: str) -> str:
    status, _, body = nginx.get(path)
    if status != 200:
        raise AssertionError(f"status {status}: {body[:200]!r}")
    return body.decode()


@needs_nginx
def test_sighup_serves_new_code_without_failing_a_request(tmp_path: Path) -> None:
    server, sock = start(tmp_path, "--workers", "2", "--graceful-timeout", "10")
    with server, Nginx(tmp_path / "nginx", [sock]) as nginx:
        server.wait_for("ready: 2 workers")
        old = worker_pids(server, 2)
        load = Load(lambda i: nginx_get(nginx, "/sleep?s=0.01"), total=600, concurrency=8)
        wait_until(lambda: load.done_count >= 150, what="150 requests")
        write_app(tmp_path, version="version-two")
        server.signal(signal.SIGHUP)
        server.wait_for("generation 2 serving")
        load.join()
        assert not load.errors, (load.errors[:3], nginx.error_log())
        versions = [body.split()[0] for body in load.results]
        assert versions.count("v1") >= 150 and "version-two" in versions
        server.wait_for(r"worker \d+ \(generation 1\) exited", count=2)
        assert nginx_get(nginx, "/").startswith("version-two")
        assert not old & worker_pids(server, 2)


@needs_nginx
def test_a_broken_reload_keeps_the_old_generation(tmp_path: Path) -> None:
    server, sock = start(tmp_path, "--workers", "2")
    with server:
        server.wait_for("ready: 2 workers")
        old = worker_pids(server, 2)
        (tmp_path / "app.py").write_text("raise RuntimeError('half-written deploy')\n")
        server.signal(signal.SIGHUP)
        server.wait_for("reload failed: .*half-written deploy.*generation 1 keeps serving")
        assert fcgi_get(sock).startswith("v1")
        assert worker_pids(server, 2) == old


@needs_nginx
def test_max_requests_recycles_under_keepalive_load_without_failures(tmp_path: Path) -> None:
    server, sock = start(tmp_path, "--workers", "2", "--max-requests", "50")
    with server, Nginx(tmp_path / "nginx", [sock]) as nginx:
        server.wait_for("ready: 2 workers")
        load = Load(lambda i: nginx_get(nginx, "/"), total=800, concurrency=8)
        load.join()
        assert not load.errors, (load.errors[:3], nginx.error_log())
        pids = {pid_of(body) for body in load.results}
        assert len(pids) >= 800 // 50 - 2, pids
        assert server.log.count("(--max-requests); recycling") >= 12
        assert "died" not in server.log


def test_reload_option_restarts_on_a_code_change(tmp_path: Path) -> None:
    server, sock = start(tmp_path, "--reload")
    with server:
        server.wait_for("ready: 1 workers")
        assert fcgi_get(sock).startswith("v1")
        write_app(tmp_path, version="version-two")
        server.wait_for("app.py changed; reloading")
        server.wait_for("generation 2 serving")
        # The old worker may still accept until it handles its SIGTERM; then only new code.
        server.wait_for(r"worker \d+ \(generation 1\) exited")
        assert fcgi_get(sock).startswith("version-two")


UPLOAD_APP = """
from smisk.core import Application

class UploadApp(Application):
    def service(self):
        files = self.request.files
        self.response.headers.append("Content-Type: text/plain")
        self.response(f"{len(files)} file(s)\\n")
"""


def test_the_upload_file_of_a_killed_worker_is_removed(tmp_path: Path) -> None:
    (tmp_path / "uploads.py").write_text(UPLOAD_APP)
    spool = tmp_path / "spool"
    spool.mkdir()
    sock = str(tmp_path / "app.sock")
    argv = ["uploads:UploadApp", "--bind", f"unix:{sock}", "--workers", "2"]
    with ServeProcess(argv, tmp_path, env=smisk_env(TMPDIR=str(spool))) as server:
        server.wait_for("ready: 2 workers")
        boundary = "b0undary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        params = {
            "REQUEST_METHOD": "POST",
            "REQUEST_URI": "/",
            "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
            "CONTENT_LENGTH": str(10 * 1024 * 1024),
        }
        with FastCGIClient(sock, timeout=30) as client:  # half an upload, then it stalls
            body = head + b"x" * 200_000
            client.send(begin_record(1) + params_records(1, params) + stdin_records(1, body)[:-8])
            spooled = wait_until(lambda: list(spool.iterdir()), what="an upload file")
            (upload,) = spooled
            victim = int(upload.name.removeprefix("smisk-upload-").split("-")[0])
            assert victim in children_of(server.proc.pid)
            subprocess.run(["kill", "-9", str(victim)], check=True)
            server.wait_for(rf"removed 1 upload file\(s\) left by worker {victim}")
        assert list(spool.iterdir()) == []
        assert fcgi_get(sock, "/") == "0 file(s)\n"  # and the service goes on
        server.signal(signal.SIGTERM)
        assert server.wait() == 0


SLOW_START_APP = """
import time
from smisk.core import Application

class SlowStart(Application):
    def application_will_start(self):
        time.sleep(1.5)

    def service(self):
        self.response("ok")
"""


def test_a_signal_before_the_worker_is_ready_is_handled_gracefully(tmp_path: Path) -> None:
    """SIGTERM to a worker still starting waits for the worker's own handlers (a graceful
    stop, exit status 0) instead of meeting the default action or the supervisor's handler."""
    (tmp_path / "slowstart.py").write_text(SLOW_START_APP)
    sock = str(tmp_path / "app.sock")
    with ServeProcess(
        ["slowstart:SlowStart", "--bind", f"unix:{sock}", "--workers", "2"], tmp_path
    ) as server:
        first = worker_pids(server, 2)
        victim = min(first)
        subprocess.run(["kill", "-TERM", str(victim)], check=True)  # while it sleeps in start-up
        server.wait_for(rf"worker {victim} died \(exit status 0\); restarting")
        server.wait_for("ready: 2 workers")
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
