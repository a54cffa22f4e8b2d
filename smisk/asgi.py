"""``smisk.asgi``: the public name of the ASGI adapter, which lives in ``smisk.adapters.asgi``."""

from smisk.adapters.asgi import *  # noqa: F403
from smisk.adapters.asgi import __all__ as __all__
