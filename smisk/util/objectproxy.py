"""``smisk.util.objectproxy``: the classic path of ``smisk.core.objectproxy.ObjectProxy``."""

from smisk.core.objectproxy import ObjectProxy

__all__ = ["ObjectProxy"]
