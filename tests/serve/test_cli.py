"""smisk-serve's command line: options, SMISK_* variables, one-line errors, ATTR kinds, loops."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from smisk import codec
from smisk.cli import build_parser, config_from
from tests.serve.support import ServeProcess, fcgi_get, run_cli, write_app


def assert_one_line_error(result: object, *fragments: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("smisk-serve: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_version_names_the_codec_implementation(tmp_path: Path) -> None:
    result = run_cli(["--version"], tmp_path)
    assert result.returncode == 0
    assert f"codec: {codec.IMPLEMENTATION}" in result.stdout
    assert result.stdout.startswith("smisk ")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--workers", "many", "app:App"], ["--workers", "many"]),
        (["--loop", "tokio", "app:App"], ["--loop"]),
        (["--graceful-timeout", "-1", "app:App"], ["--graceful-timeout"]),
        (["--no-such-option", "app:App"], ["--no-such-option"]),
        (["app"], ["MODULE:ATTR"]),
        ([], ["MODULE:ATTR"]),
        (["missing_module:App", "--bind", ":0"], ["missing_module"]),
        (["app:Nope", "--bind", ":0"], ["Nope"]),
        (["app:number", "--bind", ":0"], ["not an Application"]),
        (["app:App", "--bind", "999.1.1.1:99999"], ["port"]),
        (["app:App"], ["fd 0"]),
    ],
)
def test_bad_arguments_give_one_line(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    write_app(tmp_path)
    assert_one_line_error(run_cli(args, tmp_path), *fragments)


def test_an_import_error_inside_the_module_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import os\nraise RuntimeError('boom at import')\n")
    assert_one_line_error(run_cli(["broken:App", "--bind", ":0"], tmp_path), "boom at import")
    (tmp_path / "syntax.py").write_text("def f(:\n")
    assert_one_line_error(run_cli(["syntax:App", "--bind", ":0"], tmp_path), "SyntaxError")


def test_a_bad_environment_variable_is_one_line(tmp_path: Path) -> None:
    write_app(tmp_path)
    result = run_cli(["app:App"], tmp_path, SMISK_WORKERS="lots")
    assert_one_line_error(result, "--workers", "lots")


def test_every_option_has_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "SMISK_APP": "mod:App",
        "SMISK_BIND": ":5000,unix:/tmp/x.sock",
        "SMISK_HTTP": "127.0.0.1:8080",
        "SMISK_WORKERS": "3",
        "SMISK_THREADS": "5",
        "SMISK_BACKLOG": "77",
        "SMISK_MAX_REQUESTS": "50",
        "SMISK_GRACEFUL_TIMEOUT": "2.5",
        "SMISK_LOOP": "asyncio",
        "SMISK_LOG_LEVEL": "WARNING",
        "SMISK_ACCESS_LOG": "json",
        "SMISK_STATUS_PATH": "/status",
        "SMISK_SLOW_REQUEST_TIMEOUT": "3",
        "SMISK_REQUEST_TIMEOUT": "9",
        "SMISK_RELOAD": "1",
        "SMISK_MALLOC_KEEP": "16",
        "SMISK_MAX_BODY_SIZE": "10M",
        "SMISK_MAX_REQUESTS_IN_FLIGHT": "99",
        "SMISK_PARAMS_TIMEOUT": "4",
        "SMISK_BODY_TIMEOUT": "6.5",
        "SMISK_SEND_BUFFER": "256k",
        "SMISK_ACCEPTORS": "3",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    options = build_parser().parse_args([])
    config = config_from(options)
    assert options.app == "mod:App"
    assert config.binds == (":5000", "unix:/tmp/x.sock")
    assert config.http == ("127.0.0.1:8080",)
    assert (config.workers, config.threads, config.backlog, config.max_requests) == (3, 5, 77, 50)
    assert (config.graceful_timeout, config.loop, options.log_level) == (2.5, "asyncio", "warning")
    assert (config.access_log, config.status_path) == ("json", "/status")
    assert (config.slow_request_timeout, config.request_timeout, config.reload) == (3, 9, True)
    assert options.malloc_keep == 16
    assert (options.max_body_size, options.max_in_flight) == (10 * 1024 * 1024, 99)
    assert (options.params_timeout, options.body_timeout, options.send_buffer) == (4, 6.5, 262144)
    assert options.acceptors == 3
    # the command line wins over the environment
    options = build_parser().parse_args(["--workers", "2", "--bind", ":6000", "other:App"])
    config = config_from(options)
    assert (config.workers, config.binds, options.app) == (2, (":6000",), "other:App")


def test_forks_set_the_default_worker_count() -> None:
    class Target:
        forks = 2

    options = build_parser().parse_args(["m:A"])
    assert config_from(argparse.Namespace(**vars(options)), Target).workers == 3
    assert config_from(options, object()).workers == 1
    assert not config_from(options, object()).supervised


@pytest.mark.parametrize("attr", ["App", "instance", "factory"])
def test_attr_may_be_a_class_an_instance_or_a_factory(tmp_path: Path, attr: str) -> None:
    write_app(tmp_path)
    sock = str(tmp_path / "app.sock")
    with ServeProcess([f"app:{attr}", "--bind", f"unix:{sock}"], tmp_path) as server:
        server.wait_for("ready: serving on")
        assert fcgi_get(sock, "/hello").startswith("v1 pid=")


def test_a_factory_that_returns_no_application_fails_in_one_line(tmp_path: Path) -> None:
    write_app(tmp_path)
    result = run_cli(["app:not_an_app", "--bind", f"unix:{tmp_path / 's.sock'}"], tmp_path)
    assert result.returncode != 0
    assert "did not produce an Application" in result.stderr


@pytest.mark.parametrize(("loop", "module"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_loop_choice(tmp_path: Path, loop: str, module: str) -> None:
    pytest.importorskip("uvloop")
    write_app(tmp_path)
    sock = str(tmp_path / "app.sock")
    args = ["app:AsyncApp", "--bind", sock, "--loop", loop]
    with ServeProcess(args, tmp_path) as server:
        server.wait_for("ready: serving on")
        assert f"loop={module}" in fcgi_get(sock)


def test_bind_from_the_environment_and_smisk_app(tmp_path: Path) -> None:
    write_app(tmp_path)
    sock = str(tmp_path / "env.sock")
    from tests.serve.support import smisk_env

    env = smisk_env(SMISK_APP="app:App", SMISK_BIND=f"unix:{sock}")
    with ServeProcess([], tmp_path, env=env) as server:
        server.wait_for("ready: serving on unix:")
        assert fcgi_get(sock).startswith("v1")
    assert not Path(sock).exists()
