"""smisk-serve: run an Application over FastCGI.

Rules: bad arguments and import errors print one clear line and exit with status 2; every option
can also come from a ``SMISK_*`` environment variable (``--bind`` from ``SMISK_BIND``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from smisk._version import __version__

__all__ = ["load_app", "main"]

log = logging.getLogger("smisk")


class UsageError(Exception):
    """A problem with the command line; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; defaults come from SMISK_* environment variables."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="smisk-serve", description="Serve a smisk Application over FastCGI."
    )
    parser.add_argument("app", nargs="?", help="MODULE:ATTR (a class, an instance or a factory)")
    parser.add_argument(
        "--bind",
        action="append",
        default=None,
        help="address to listen on: :5000, HOST:PORT, [::1]:5000, unix:/path (repeatable); "
        "without it, the socket on fd 0 is used",
    )
    parser.add_argument("--threads", type=int, default=int(env("SMISK_THREADS", "0")) or None)
    parser.add_argument("--backlog", type=int, default=int(env("SMISK_BACKLOG", "1024")))
    parser.add_argument(
        "--graceful-timeout", type=float, default=float(env("SMISK_GRACEFUL_TIMEOUT", "30"))
    )
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default=env("SMISK_LOOP", "auto")
    )
    parser.add_argument("--log-level", default=env("SMISK_LOG_LEVEL", "info"))
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    return parser


def load_app(spec: str) -> Any:
    """Import ``MODULE:ATTR`` and return an Application instance."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected MODULE:ATTR, got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import {module_name!r}: {error}") from None
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    from smisk.application import Application

    if isinstance(target, Application):
        return target
    if inspect.isclass(target) or callable(target):
        instance = target()
        if isinstance(instance, Application):
            return instance
    raise UsageError(f"{spec} is not an Application, an Application class or a factory of one")


def version_text() -> str:
    """Versions of smisk, its codec implementation, Python and the event loop."""
    from smisk import codec

    loop = "uvloop" if _uvloop_available() else "asyncio"
    return (
        f"smisk {__version__} (codec: {codec.IMPLEMENTATION}; loop: {loop}; "
        f"Python {sys.version.split()[0]})"
    )


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop" or (kind == "auto" and _uvloop_available()):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _serve(app: Any, options: argparse.Namespace) -> None:
    from smisk.server import Server, bind_listener, inherited_listener
    from smisk.serving import ApplicationHandler

    if options.bind:
        listeners = [bind_listener(address, options.backlog) for address in options.bind]
    else:
        inherited = inherited_listener()
        if inherited is None:
            raise UsageError("no --bind given and fd 0 is not a listening socket")
        listeners = [inherited]
    loop = asyncio.get_running_loop()
    handler = ApplicationHandler(app, options.threads)
    server = Server(handler)
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    app._stop = lambda: loop.call_soon_threadsafe(stopped.set)
    app.application_will_start()
    await server.start(listeners)
    log.info("serving on %s", ", ".join(str(a) for a in server.addresses))
    try:
        await stopped.wait()
    finally:
        await server.close(options.graceful_timeout)
        await loop.run_in_executor(None, handler.close)
        app.application_did_stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smisk-serve``."""
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.version:
        print(version_text())
        return 0
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(process)d %(levelname)s %(message)s"
    )
    if options.bind is None and os.environ.get("SMISK_BIND"):
        options.bind = os.environ["SMISK_BIND"].split(",")
    try:
        if not options.app:
            raise UsageError("missing MODULE:ATTR")
        app = load_app(options.app)
        loop = _new_loop(options.loop)
        try:
            loop.run_until_complete(_serve(app, options))
        finally:
            loop.close()
    except (UsageError, OSError, ValueError) as error:
        print(f"smisk-serve: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
