"""ObjectProxy forwards everything to the object its getter returns, per context."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest

from smisk.core.objectproxy import ObjectProxy


class Target:
    def __init__(self) -> None:
        self.attr = "value"
        self.items: dict[str, int] = {"a": 1}

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return (args, kwargs)

    def __getitem__(self, key: str) -> int:
        return self.items[key]

    def __setitem__(self, key: str, value: int) -> None:
        self.items[key] = value

    def __delitem__(self, key: str) -> None:
        del self.items[key]

    def __repr__(self) -> str:
        return "<Target>"


def test_default_proxy_wraps_none_like_the_original() -> None:
    proxy = ObjectProxy()
    assert proxy is not None
    assert proxy == None  # noqa: E711 - the classic idiom this proxy must support
    assert not proxy
    assert repr(proxy) == "None"
    target = Target()
    proxy._set_object(target)
    assert proxy._object() is target
    assert proxy is not target
    assert proxy == target
    assert bool(proxy)


def test_attribute_access_is_forwarded() -> None:
    target = Target()
    proxy = ObjectProxy(lambda: target)
    assert proxy.attr == "value"
    proxy.attr = "changed"
    assert target.attr == "changed"
    proxy.extra = 5
    assert target.extra == 5  # type: ignore[attr-defined]
    del proxy.extra
    assert not hasattr(target, "extra")
    with pytest.raises(AttributeError):
        _ = proxy.missing


def test_items_calls_and_repr_are_forwarded() -> None:
    target = Target()
    proxy = ObjectProxy(lambda: target)
    assert proxy["a"] == 1
    proxy["b"] = 2
    assert target.items["b"] == 2
    del proxy["a"]
    assert "a" not in target.items
    assert proxy(1, k=2) == ((1,), {"k": 2})
    assert repr(proxy) == "<Target>"
    assert str(proxy) == "<Target>"


def test_containers_and_comparisons() -> None:
    proxy = ObjectProxy(lambda: [3, 1, 2])
    assert list(proxy) == [3, 1, 2]
    assert len(proxy) == 3
    assert 2 in proxy
    assert 7 not in proxy
    assert proxy == [3, 1, 2]
    assert proxy != [1]
    number = ObjectProxy(lambda: 5)
    assert number < 6 and number <= 5 and number > 4 and number >= 5
    assert hash(number) == hash(5)


def test_repr_falls_back_when_the_getter_fails() -> None:
    def broken() -> Any:
        raise LookupError("no current request")

    proxy = ObjectProxy(broken)
    assert repr(proxy).startswith("<smisk.core.objectproxy.ObjectProxy object at 0x")
    with pytest.raises(LookupError):
        _ = proxy.anything


def test_set_object_without_setter_is_refused() -> None:
    proxy = ObjectProxy(lambda: 1)
    with pytest.raises(TypeError, match="no setter"):
        proxy._set_object(2)


def test_contextvar_backed_proxy_is_per_context() -> None:
    var: contextvars.ContextVar[Any] = contextvars.ContextVar("current", default=None)
    proxy = ObjectProxy(var.get, var.set)
    proxy._set_object("outer")

    def inner() -> str:
        proxy._set_object("inner")
        return str(proxy)

    assert contextvars.copy_context().run(inner) == "inner"
    assert proxy == "outer"
