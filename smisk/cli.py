"""smisk-serve: run an Application over FastCGI (also ``python -m smisk``).

Rules: bad arguments and import errors print one line (``smisk-serve: error: ...``) and exit
with status 2, never a traceback; every option can also come from a ``SMISK_*`` environment
variable (``--bind`` from ``SMISK_BIND``, comma-separated; ``--max-requests`` from
``SMISK_MAX_REQUESTS``; the application from ``SMISK_APP``); the command line wins. Without
``--debug`` (or ``--env development``) the application runs in production mode: error pages
show clients only the status.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from smisk._version import __version__
from smisk.runtime import allocator
from smisk.runtime.mode import DEVELOPMENT, MODES, PRODUCTION, check_mode
from smisk.runtime.ops import DEFAULT_MAX_QUEUE_TIME
from smisk.runtime.ops.status import DEFAULT_STATUS_ALLOW
from smisk.runtime.reload import AppImporter, ImportFailed
from smisk.runtime.workers import ServeConfig, StatusPipe, Supervisor, run_worker, uvloop_available
from smisk.server import Listener, bind_listener, inherited_listener
from smisk.server.limits import ServerLimits, parse_size

__all__ = ["build_parser", "config_from", "load_app", "main", "mode_of", "version_text"]

log = logging.getLogger("smisk")

EXIT_USAGE = 2  # argparse's status for a bad command line; also used for import errors
LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


class UsageError(Exception):
    """A problem with the command line or the application's import; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SMISK_{name}", default)


def _flag(name: str) -> bool:
    return (_env(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


_positive_int.__name__ = "non-negative integer"
_seconds.__name__ = "number of seconds"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; defaults come from ``SMISK_*`` environment variables."""
    parser = _Parser(prog="smisk-serve", description="Serve a smisk Application over FastCGI.")
    add = parser.add_argument
    add(
        "app",
        nargs="?",
        default=_env("APP"),
        help="MODULE:ATTR (a class, an instance or a factory)",
    )
    add(
        "--bind",
        action="append",
        metavar="ADDR",
        help="listen on :5000, HOST:PORT, [::1]:5000 or "
        "unix:/path (repeatable); without it, the socket on fd 0 is used",
    )
    add(
        "--workers",
        type=_positive_int,
        default=_env("WORKERS"),
        metavar="N",
        help="worker processes (default: the app's forks + 1, else 1; 0 or 1 run in one process)",
    )
    add(
        "--threads",
        type=_positive_int,
        default=_env("THREADS"),
        metavar="N",
        help="handler threads per worker for a sync service() (default: Application.threads)",
    )
    add("--backlog", type=_positive_int, default=_env("BACKLOG", "1024"), metavar="N")
    add(
        "--max-requests",
        type=_positive_int,
        default=_env("MAX_REQUESTS", "0"),
        metavar="N",
        help="recycle a worker after N requests, without dropping any (0: never)",
    )
    add(
        "--graceful-timeout",
        type=_seconds,
        default=_env("GRACEFUL_TIMEOUT", "30"),
        metavar="S",
        help="seconds in-flight requests get on SIGTERM, reload and recycling",
    )
    add("--loop", choices=("auto", "asyncio", "uvloop"), default=_env("LOOP", "auto"))
    add(
        "--interface",
        choices=("auto", "smisk", "wsgi", "asgi"),
        default=_env("INTERFACE", "auto"),
        help="what MODULE:ATTR is: a smisk Application, a WSGI or an ASGI app (auto: detect)",
    )
    add(
        "--mount",
        default=_env("MOUNT", ""),
        help="WSGI SCRIPT_NAME / ASGI root_path, overriding the front end's split (/: at the root)",
    )
    add(
        "--forwarded-allow-ips",
        default=_env("FORWARDED_ALLOW_IPS", ""),
        metavar="NETS",
        help="proxies (REMOTE_ADDR from the front end) whose X-Forwarded-Proto and "
        "X-Forwarded-For are believed: addresses and CIDR networks, comma-separated, or '*' "
        "(default: none)",
    )
    add(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=("debug", "info", "warning", "error", "critical"),
        type=str.lower,
    )
    add(
        "--access-log",
        default=_env("ACCESS_LOG"),
        metavar="FORMAT|json",
        help="log each request: combined, common, json or a {field} template",
    )
    add(
        "--access-log-file",
        default=_env("ACCESS_LOG_FILE"),
        metavar="PATH",
        help="where the access log goes (default: stderr); reopened on SIGUSR1",
    )
    add(
        "--status-path",
        default=_env("STATUS_PATH"),
        metavar="PATH",
        help="answer PATH with the status of all workers (JSON or OpenMetrics)",
    )
    add(
        "--status-allow",
        action="append",
        metavar="NET",
        help="clients (REMOTE_ADDR from the front end) that may read --status-path: addresses, "
        "CIDR networks and 'unix' for clients without one (repeatable or comma-separated; "
        f"default {DEFAULT_STATUS_ALLOW})",
    )
    add(
        "--slow-request-timeout",
        type=_seconds,
        default=_env("SLOW_REQUEST_TIMEOUT", "0"),
        metavar="S",
        help="log the stack of a handler running longer than S seconds (0: off)",
    )
    add(
        "--request-timeout",
        type=_seconds,
        default=_env("REQUEST_TIMEOUT", "0"),
        metavar="S",
        help="answer 504 after S seconds and stop the handler (0: off)",
    )
    add(
        "--max-queue-time",
        type=_seconds,
        default=_env("MAX_QUEUE_TIME", str(DEFAULT_MAX_QUEUE_TIME)),
        metavar="S",
        help="shed load: new requests get 503 while the oldest one waiting for a handler "
        f"thread has waited S seconds, or the queue would take that long (default "
        f"{DEFAULT_MAX_QUEUE_TIME:g}; 0: off)",
    )
    add(
        "--max-queue",
        type=_positive_int,
        default=_env("MAX_QUEUE"),
        metavar="N",
        help="also answer 503 once N requests wait for a handler thread (default: no cap)",
    )
    add(
        "--reload",
        action="store_true",
        default=_flag("RELOAD"),
        help="restart the workers when the application's files change (development)",
    )
    add(
        "--http",
        action="append",
        metavar="ADDR",
        help="also serve HTTP/1.1 on ADDR through a built-in front end (development)",
    )
    add(
        "--http-max-connections",
        type=_positive_int,
        default=_env("HTTP_MAX_CONNECTIONS"),
        metavar="N",
        help="open --http connections per worker before accepting pauses (default 512, fewer "
        "when ulimit -n is low)",
    )
    add(
        "--http-idle-timeout",
        type=_seconds,
        default=_env("HTTP_IDLE_TIMEOUT"),
        metavar="S",
        help="seconds an --http keep-alive connection may wait for its next request "
        "(default 75; 0: no limit)",
    )
    add(
        "--http-send-timeout",
        type=_seconds,
        default=_env("HTTP_SEND_TIMEOUT"),
        metavar="S",
        help="seconds an --http client may take to accept more of a response before it is "
        "dropped (default 60; 0: no limit)",
    )
    add(
        "--allow-from",
        action="append",
        metavar="NET",
        help="accept connections only from these IPv4/IPv6 addresses or CIDR networks "
        "(repeatable or comma-separated; adds to FCGI_WEB_SERVER_ADDRS; unix peers are refused)",
    )
    add(
        "--socket-mode",
        type=_octal,
        default=_env("SOCKET_MODE"),
        metavar="MODE",
        help="permissions of unix sockets from --bind, e.g. 660",
    )
    add(
        "--socket-owner",
        default=_env("SOCKET_OWNER"),
        metavar="USER[:GROUP]",
        help="owner of unix sockets from --bind",
    )
    add(
        "--max-body-size",
        type=parse_size,
        default=_env("MAX_BODY_SIZE"),
        metavar="SIZE",
        help="largest request body (e.g. 10M; default 1G): 413 before the handler or as soon as "
        "the stream passes it",
    )
    add(
        "--max-in-flight",
        type=_positive_int,
        default=_env("MAX_REQUESTS_IN_FLIGHT"),
        metavar="N",
        help="requests in flight per worker before new ones get 503 (default 1024)",
    )
    add(
        "--params-timeout",
        type=_seconds,
        default=_env("PARAMS_TIMEOUT"),
        metavar="S",
        help="seconds a request may take to send its parameters (default 30)",
    )
    add(
        "--body-timeout",
        type=_seconds,
        default=_env("BODY_TIMEOUT"),
        metavar="S",
        help="seconds without a byte of an unfinished request body: 408 (default 60)",
    )
    add(
        "--send-buffer",
        type=parse_size,
        default=_env("SEND_BUFFER"),
        metavar="SIZE",
        help="SO_SNDBUF of unix-socket connections with large responses (default 1M; 0: the "
        "kernel's)",
    )
    add(
        "--acceptors",
        type=_positive_int,
        default=_env("ACCEPTORS"),
        metavar="N",
        help="accepting servers per listening socket: each takes one connection per loop "
        "pass on uvloop (default 0: 8 on uvloop, 1 on asyncio's loop)",
    )
    add(
        "--malloc-keep",
        type=_positive_int,
        default=_env("MALLOC_KEEP", str(allocator.DEFAULT_KEEP // allocator.MIB)),
        metavar="MIB",
        help="freed memory each process keeps for reuse instead of returning it to the "
        "system after every large request (glibc; 0: the C library's defaults)",
    )
    add(
        "--env",
        choices=MODES,
        help="production (default): error pages show clients only the status; development: "
        "tracebacks (SMISK_ENV)",
    )
    add(
        "--debug",
        action="store_true",
        help="development mode (--env development): error pages show tracebacks (SMISK_DEBUG)",
    )
    add("--version", action="store_true", help="print versions and exit")
    return parser  # fmt: skip


def _octal(text: str) -> int:
    return int(text, 8)


_octal.__name__ = "octal mode"


def _apply_allow_from(values: list[str] | None) -> None:
    """Check ``--allow-from`` and hand it to every worker's server through SMISK_ALLOW_FROM."""
    from smisk.server.limits import parse_allow_from

    text = ",".join(values or [])
    if text:
        try:
            parse_allow_from(text)
        except ValueError as error:
            raise UsageError(f"--allow-from: {error}") from None
        os.environ["SMISK_ALLOW_FROM"] = text


# Server limits reach every worker's ServerLimits.from_environ() (and the --http front end's
# HTTPLimits.from_environ()) through these variables.
_LIMIT_VARIABLES = {
    "max_body_size": "SMISK_MAX_BODY_SIZE",
    "max_in_flight": "SMISK_MAX_REQUESTS_IN_FLIGHT",
    "params_timeout": "SMISK_PARAMS_TIMEOUT",
    "body_timeout": "SMISK_BODY_TIMEOUT",
    "send_buffer": "SMISK_SEND_BUFFER",
    "acceptors": "SMISK_ACCEPTORS",
    "http_max_connections": "SMISK_HTTP_MAX_CONNECTIONS",
    "http_idle_timeout": "SMISK_HTTP_IDLE_TIMEOUT",
    "http_send_timeout": "SMISK_HTTP_SEND_TIMEOUT",
}


def _apply_limits(options: argparse.Namespace) -> None:
    """Hand the server-limit options to every worker (``smisk.server.limits.ServerLimits``)."""
    for option, variable in _LIMIT_VARIABLES.items():
        value = getattr(options, option)
        if value is not None:
            os.environ[variable] = str(value)


def mode_of(options: argparse.Namespace) -> str:
    """The mode: ``--env``, else ``--debug``, else ``SMISK_ENV``, else ``SMISK_DEBUG``; by
    default production."""
    if options.env is not None:
        if options.debug and options.env != DEVELOPMENT:
            raise UsageError(f"--debug contradicts --env {options.env}")
        return str(options.env)
    if options.debug:
        return DEVELOPMENT
    try:
        mode = check_mode(_env("ENV") or None)
    except ValueError as error:
        raise UsageError(f"SMISK_ENV: {error}") from None
    if mode is not None:
        return mode
    return DEVELOPMENT if _flag("DEBUG") else PRODUCTION


def _warn_unauthenticated(listeners: list[Listener]) -> None:
    """Warn about each FastCGI socket other machines can reach while no allow-list is set."""
    if ServerLimits.from_environ().allow_from:
        return
    for listener in listeners:
        address = listener.bound_address
        if not address.is_local:
            log.warning(
                "%s is reachable from other machines and FastCGI has no authentication: "
                "whoever connects can set REMOTE_USER, HTTPS or SCRIPT_FILENAME; restrict it "
                "with --allow-from or FCGI_WEB_SERVER_ADDRS, or bind 127.0.0.1 or a unix socket",
                address,
            )


def _split(values: list[str] | None, env_name: str) -> tuple[str, ...]:
    if values is None:
        values = [v for v in (_env(env_name) or "").split(",") if v.strip()]
    return tuple(v.strip() for v in values)


def config_from(options: argparse.Namespace, target: Any = None) -> ServeConfig:
    """The ServeConfig for parsed ``options``; the app's ``forks`` sets the default workers."""
    workers = options.workers
    if workers is None:
        forks = getattr(target, "forks", 0)
        workers = forks + 1 if isinstance(forks, int) and forks > 0 else 1
    return ServeConfig(
        binds=_split(options.bind, "BIND"),
        http=_split(options.http, "HTTP"),
        workers=workers,
        threads=options.threads or None,
        backlog=options.backlog,
        max_requests=options.max_requests,
        graceful_timeout=options.graceful_timeout,
        loop=options.loop,
        reload=options.reload,
        access_log=options.access_log,
        status_path=options.status_path,
        status_allow=",".join(options.status_allow or [])
        or _env("STATUS_ALLOW")
        or DEFAULT_STATUS_ALLOW,
        slow_request_timeout=options.slow_request_timeout,
        request_timeout=options.request_timeout,
        max_queue=options.max_queue,
        max_queue_time=options.max_queue_time,
        access_log_file=options.access_log_file,
        interface=interface_of(options.interface, target),
        mount=options.mount,
        forwarded_allow_ips=_forwarded_allow_ips(options.forwarded_allow_ips),
        env=mode_of(options),
    )


def _forwarded_allow_ips(text: str) -> str:
    """``--forwarded-allow-ips``, checked here so that a bad entry fails before binding."""
    from smisk.core.frontend import TrustedProxies

    try:
        TrustedProxies.parse(text)
    except ValueError as error:
        raise UsageError(f"--forwarded-allow-ips: {error}") from None
    return text


def interface_of(requested: str, target: Any) -> str:
    """The interface to serve ``target`` through (``--interface``; ``auto`` detects it)."""
    if requested != "auto" or target is None:
        return requested
    from smisk.runtime.interfaces import detect_interface

    try:
        return detect_interface(target)
    except TypeError:
        return "smisk"  # e.g. a factory of an Application: the smisk path checks it


def load_app(spec: str) -> Any:
    """Import ``MODULE:ATTR`` and return an Application instance."""
    from smisk.runtime.embed import instantiate

    try:
        return instantiate(AppImporter(spec).load())
    except (ImportFailed, TypeError) as error:
        raise UsageError(str(error)) from None


def version_text() -> str:
    """Versions of smisk, its codec implementation, Python and the event loop."""
    from smisk import codec

    loop = "uvloop" if uvloop_available() else "asyncio"
    return (
        f"smisk {__version__} (codec: {codec.IMPLEMENTATION}; loop: {loop}; "
        f"Python {sys.version.split()[0]})"
    )


def _require_h11() -> None:
    """``--http`` parses HTTP with h11: without it, say so in one line before binding."""
    try:
        import h11  # noqa: F401
    except ImportError:
        raise UsageError("--http needs the h11 package: pip install h11") from None


def _check_target(spec: str, target: Any) -> None:
    from smisk.core.application import Application

    if isinstance(target, Application) or callable(target):
        return
    raise UsageError(f"{spec} is not an Application, an Application class or a factory of one")


def _listeners(
    config: ServeConfig, mode: int | None = None, owner: str | None = None
) -> tuple[list[Listener], list[Listener]]:
    listeners: list[Listener] = []
    try:
        for address in config.binds:
            listeners.append(bind_listener(address, config.backlog, mode=mode, owner=owner))
        http = [bind_listener(address, config.backlog) for address in config.http]
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    if not listeners and not http:
        inherited = inherited_listener()
        if inherited is None:
            raise UsageError("no --bind given and fd 0 is not a listening socket (see --help)")
        listeners.append(inherited)
    return listeners, http


def serve(spec: str, options: argparse.Namespace) -> int:
    """Import the application, bind, and run it in one process or under a supervisor."""
    importer = AppImporter(spec)
    target = importer.load()
    config = config_from(options, target)
    if config.interface == "smisk":
        _check_target(spec, target)
    config.ops()  # a bad --access-log template or --status-path fails here, before binding
    if config.loop == "uvloop" and not uvloop_available():
        raise UsageError("--loop uvloop: uvloop is not installed (pip install 'smisk[uvloop]')")
    if config.http:
        _require_h11()
    _apply_allow_from(options.allow_from)
    _apply_limits(options)
    allocator.tune(options.malloc_keep * allocator.MIB)  # forked workers inherit it
    listeners, http = _listeners(config, options.socket_mode, options.socket_owner)
    _warn_unauthenticated(listeners)
    if config.env == DEVELOPMENT:
        log.warning("development mode: error pages show tracebacks to every client")
    if config.supervised:
        supervisor = Supervisor(importer, target, config, listeners, http)
        status = supervisor.run()
        if supervisor.error:
            raise UsageError(supervisor.error)
        return status
    return run_worker(target, listeners, http, config, StatusPipe(None))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smisk-serve``."""
    options = build_parser().parse_args(argv)
    if options.version:
        print(version_text())
        return 0
    logging.basicConfig(level=options.log_level.upper(), format=LOG_FORMAT)
    try:
        if not options.app:
            raise UsageError("missing MODULE:ATTR (or SMISK_APP)")
        status = serve(options.app, options)
    except (UsageError, ImportFailed, OSError, ValueError) as error:
        print(f"smisk-serve: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0
    if status == 3:  # the application failed to start; its traceback is logged
        print("smisk-serve: error: the application failed to start", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
