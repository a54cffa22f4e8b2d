"""Which interface an application object speaks (smisk, WSGI or ASGI), and a server handler for it.

Rules: detection only inspects the object (its class and signatures); it never calls it. A smisk
``Application`` class or instance is "smisk"; a coroutine function (or an object whose
``__call__`` is one) taking three positional arguments is "asgi"; any other callable taking two
is "wsgi". Anything else is refused with a message that says why.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from smisk.core.frontend import TrustedProxies

__all__ = ["Interface", "detect_interface", "make_handler", "start_handler", "stop_handler"]

Interface = Literal["smisk", "wsgi", "asgi"]
INTERFACES: tuple[str, ...] = ("auto", "smisk", "wsgi", "asgi")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _is_smisk(obj: object) -> bool:
    from smisk.core.application import Application

    return isinstance(obj, Application) or (inspect.isclass(obj) and issubclass(obj, Application))


def _accepts(func: Callable[..., Any], count: int) -> bool:
    """True if ``func`` can be called with exactly ``count`` positional arguments."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    keyword_only = any(
        p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
        for p in parameters
    )
    fits = len(required) <= count and (varargs or len(positional) >= count)
    return fits and not keyword_only


def _is_coroutine_callable(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 -- the method itself is inspected
    return not inspect.isclass(obj) and inspect.iscoroutinefunction(call)


def detect_interface(obj: object) -> Interface:
    """``"smisk"``, ``"asgi"`` or ``"wsgi"`` for an application object; TypeError otherwise."""
    if _is_smisk(obj):
        return "smisk"
    if not callable(obj):
        raise TypeError(f"{obj!r} is not callable: not a smisk, WSGI or ASGI application")
    if _is_coroutine_callable(obj):
        if _accepts(obj, 3):
            return "asgi"
        raise TypeError(f"{obj!r} is a coroutine function but not (scope, receive, send)")
    if _accepts(obj, 2):
        return "wsgi"
    raise TypeError(
        f"cannot tell what {obj!r} is: a WSGI application takes (environ, start_response), "
        f"an ASGI one is `async def (scope, receive, send)`"
    )


def _smisk_handler(
    obj: Any, threads: int | None, forwarded: str | Sequence[str] | TrustedProxies
) -> Any:
    from smisk.runtime.handler import ApplicationHandler

    app: Any = obj() if inspect.isclass(obj) else obj
    return ApplicationHandler(app, threads, forwarded_allow_ips=forwarded)


def make_handler(
    obj: Any,
    interface: str = "auto",
    *,
    threads: int | None = None,
    mount: str = "",
    lifespan: str = "auto",
    forwarded_allow_ips: str | Sequence[str] | TrustedProxies = (),
) -> Callable[[Any], Awaitable[None]]:
    """A ``smisk.server.Server`` handler serving ``obj`` through ``interface``.

    ``threads`` sizes the thread pool of smisk (sync ``service()``) and WSGI applications;
    ``mount`` is the WSGI SCRIPT_NAME / ASGI root_path when the front end does not split paths;
    ``lifespan`` is the ASGI lifespan mode (``"auto"``, ``"on"``, ``"off"``);
    ``forwarded_allow_ips`` the proxies whose X-Forwarded-Proto/-For are believed. Await
    ``start_handler`` before serving and ``stop_handler`` after the server closed.
    """
    if interface not in INTERFACES:
        raise ValueError(f"interface must be one of {', '.join(INTERFACES)}, not {interface!r}")
    kind = detect_interface(obj) if interface == "auto" else interface
    if kind == "smisk":
        return _smisk_handler(obj, threads, forwarded_allow_ips)  # type: ignore[no-any-return]
    if kind == "wsgi":
        from smisk.adapters.wsgi import WSGIHandler

        return WSGIHandler(obj, threads, script_name=mount, forwarded_allow_ips=forwarded_allow_ips)
    from smisk.adapters.asgi import ASGIHandler

    return ASGIHandler(
        obj, root_path=mount, lifespan=lifespan, forwarded_allow_ips=forwarded_allow_ips
    )


async def start_handler(handler: object) -> None:
    """Run the handler's start-up (ASGI lifespan startup); raises if the application refused."""
    startup = getattr(handler, "startup", None)
    if startup is not None:
        await startup()


async def stop_handler(handler: object) -> None:
    """Run the handler's shutdown (ASGI lifespan), then release its threads off the loop."""
    shutdown = getattr(handler, "shutdown", None)
    if shutdown is not None:
        await shutdown()
    close = getattr(handler, "close", None)
    if close is not None:
        await asyncio.get_running_loop().run_in_executor(None, close)
