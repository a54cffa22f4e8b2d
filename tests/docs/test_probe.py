"""smisk-probe: every check passes against smisk-serve; a deliberately broken FastCGI server
fails the checks it breaks and passes the others; the command's exit status says which."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from smisk.probe import CHECKS, main, parse_address, run_checks
from tests.docs.support import ROOT, python_env, smisk_serve


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smisk.probe", *args],
        cwd=ROOT,
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["smisk-probe"] == "smisk.probe:main"


def test_every_check_passes_against_smisk(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    with smisk_serve("examples.hello:App", "--bind", f"unix:{sock}", "--bind", "127.0.0.1:0") as s:
        port = s.wait_for(r"127\.0\.0\.1:(\d+)").group(1)
        by_unix = probe(f"unix:{sock}")
        by_tcp = probe("--json", f"127.0.0.1:{port}")
    assert by_unix.returncode == 0, by_unix.stdout
    assert f"{len(CHECKS)} of {len(CHECKS)} checks passed" in by_unix.stdout
    assert by_unix.stdout.count("PASS ") == len(CHECKS)
    results = json.loads(by_tcp.stdout)
    assert by_tcp.returncode == 0 and all(r["passed"] for r in results), results
    assert [r["check"] for r in results] == list(CHECKS)


# -- a broken server ---------------------------------------------------------------------------


class BrokenServer:
    """A tiny FastCGI responder with classic bugs: it never answers management records, ignores
    FCGI_KEEP_CONN (closes after every response), serves any role, ignores ABORT_REQUEST and
    waits for the whole body before answering."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(16)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while len(buffer) >= 8:
                    _, rtype, rid, length, padding = struct.unpack(">BBHHBx", buffer[:8])
                    if len(buffer) < 8 + length + padding:
                        break
                    buffer = buffer[8 + length + padding :]
                    if rtype == 5 and length == 0:  # end of STDIN: answer, then hang up
                        out = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok"
                        conn.sendall(self._record(6, rid, out) + self._record(6, rid, b""))
                        conn.sendall(self._record(3, rid, bytes(8)))
                        return

    @staticmethod
    def _record(rtype: int, rid: int, content: bytes) -> bytes:
        return struct.pack(">BBHHBx", 1, rtype, rid, len(content), 0) + content

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "broken.sock")
    server = BrokenServer(path)
    yield path
    server.close()


def test_a_broken_server_fails_the_checks_it_breaks(broken: str) -> None:
    results = {r.name: r for r in run_checks(broken, timeout=0.5)}
    failed = {name for name, result in results.items() if not result.passed}
    assert failed == {
        "get-values",
        "get-values-mid-request",
        "unknown-type",
        "unknown-role",
        "keep-conn",
        "multiplexing",
        "abort",
        "bad-version",
    }, {name: r.detail for name, r in results.items()}
    assert "no answer within 0.5 s" in results["get-values"].detail
    assert "protocolStatus 0, not UNKNOWN_ROLE" in results["unknown-role"].detail
    for name in ("responder", "padding", "split-records", "big-params", "big-body"):
        assert results[name].passed, results[name].detail


def test_exit_status_and_output_for_a_broken_server(
    broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([f"unix:{broken}", "--timeout", "0.5", "--check", "responder"]) == 0
    assert main([f"unix:{broken}", "--timeout", "0.5", "--check", "unknown-type"]) == 1
    out = capsys.readouterr().out
    assert "PASS  responder" in out and "FAIL  unknown-type" in out
    assert "0 of 1 checks passed" in out


def test_unreachable_address_fails_every_check(tmp_path: Path) -> None:
    results = run_checks(str(tmp_path / "nobody.sock"), ["responder"], timeout=0.5)
    assert not results[0].passed and "cannot connect" in results[0].detail


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("unix:/run/app.sock", "/run/app.sock"),
        ("/run/app.sock", "/run/app.sock"),
        ("127.0.0.1:5000", ("127.0.0.1", 5000)),
        ("[::1]:5000", ("::1", 5000)),
        (":5000", ("127.0.0.1", 5000)),
    ],
)
def test_parse_address(text: str, address: object) -> None:
    assert parse_address(text) == address


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nonsense"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main([])
    assert "missing ADDRESS" in capsys.readouterr().err
