# Rules: no I/O, no knowledge of requests or applications. The proxy only forwards; where the
# target comes from (a ContextVar, a global, a thread-local) is decided by whoever builds it.
"""Object proxy.

A port of the idea behind paste.registry's StackedObjectProxy as the classic Smisk had it: an
object that forwards attribute access, item access, calls, iteration, truth testing, ``repr``
and comparisons to a *current* target object. The classic proxy stored its target; this one asks
a callable for it on every access, so the application layer can hand it a ``ContextVar`` getter
and every request sees its own object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["ObjectProxy"]


class _Holder:
    """The default target store: one object, shared by everyone who uses the proxy."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def get(self) -> object:
        return self.obj

    def set(self, obj: object) -> None:
        self.obj = obj


class ObjectProxy:
    """Proxy an object obtained from ``getter`` on every access.

    ``ObjectProxy(getter)`` forwards to ``getter()``; ``setter``, when given, is what
    ``_set_object`` calls. ``ObjectProxy()`` or ``ObjectProxy(obj=value)`` keeps a plain stored
    target (``None`` by default), as the classic proxy did.

    Identity is the proxy's own (``proxy is target`` is False) but equality, truth and ``repr`` are
    the target's, so ``proxy == None`` is True while no target is set.
    """

    __slots__ = ("__getter", "__setter")

    def __init__(
        self,
        getter: Callable[[], Any] | None = None,
        setter: Callable[[Any], None] | None = None,
        *,
        obj: object = None,
    ) -> None:
        if getter is None:
            holder = _Holder(obj)
            getter, setter = holder.get, holder.set
        object.__setattr__(self, "_ObjectProxy__getter", getter)
        object.__setattr__(self, "_ObjectProxy__setter", setter)

    def _object(self) -> Any:
        """Return the current target."""
        return self.__getter()

    def _set_object(self, obj: object) -> None:
        """Replace the current target; ``TypeError`` if the proxy was built without a setter."""
        if self.__setter is None:
            raise TypeError("this ObjectProxy has no setter; its target is read-only")
        self.__setter(obj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__getter(), name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self.__getter(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self.__getter(), name)

    def __getitem__(self, key: Any) -> Any:
        return self.__getter()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__getter()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.__getter()[key]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__getter()(*args, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.__getter())

    def __len__(self) -> int:
        return len(self.__getter())

    def __contains__(self, key: object) -> bool:
        return key in self.__getter()

    def __bool__(self) -> bool:
        return bool(self.__getter())

    def __hash__(self) -> int:
        return hash(self.__getter())

    def __eq__(self, other: object) -> bool:
        return bool(self.__getter() == other)

    def __ne__(self, other: object) -> bool:
        return bool(self.__getter() != other)

    def __lt__(self, other: Any) -> bool:
        return bool(self.__getter() < other)

    def __le__(self, other: Any) -> bool:
        return bool(self.__getter() <= other)

    def __gt__(self, other: Any) -> bool:
        return bool(self.__getter() > other)

    def __ge__(self, other: Any) -> bool:
        return bool(self.__getter() >= other)

    def __repr__(self) -> str:
        try:
            return repr(self.__getter())
        except (TypeError, AttributeError, LookupError):
            cls = type(self)
            return f"<{cls.__module__}.{cls.__name__} object at {id(self):#x}>"

    def __str__(self) -> str:
        return str(self.__getter())
