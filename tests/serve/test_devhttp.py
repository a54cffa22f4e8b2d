"""``smisk-serve app:App --http ADDR``: the h11 front end answers curl and urllib, GET and POST."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.support import ServeProcess, write_app


@pytest.fixture(scope="module", params=["1", "2"], ids=["single", "workers"])
def http_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("devhttp")
    write_app(directory)
    args = ["app:App", "--http", "127.0.0.1:0", "--workers", request.param]
    with ServeProcess(args, directory) as server:
        match = server.wait_for(r"ready: .*serving on 127\.0\.0\.1:(\d+)")
        yield f"http://127.0.0.1:{match.group(1)}"


def fetch(
    url: str, data: bytes | None = None, method: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.status, dict(response.headers), response.read()


def test_urllib_get(http_url: str) -> None:
    status, headers, body = fetch(http_url + "/hello?x=1")
    assert status == 200
    assert headers["Content-Type"] == "text/plain"
    assert body.startswith(b"v1 pid=") and b"path=/hello body=0" in body


def test_urllib_post_streams_a_large_body(http_url: str) -> None:
    payload = b"x" * (3 * 1024 * 1024 + 17)
    status, _, body = fetch(http_url + "/upload", data=payload)
    assert status == 200
    assert f"body={len(payload)}".encode() in body


def test_head_has_no_body(http_url: str) -> None:
    status, _, body = fetch(http_url + "/", method="HEAD")
    assert (status, body) == (200, b"")


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_get_and_post_with_keep_alive(http_url: str, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"y" * 200_000)  # curl sends Expect: 100-continue for this
    result = subprocess.run(
        ["curl", "-sS", "--fail", http_url + "/a", "--next", "-sS", "--fail",
         "--data-binary", f"@{big}", http_url + "/b"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert "path=/a body=0" in first and "path=/b body=200000" in second
