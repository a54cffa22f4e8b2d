"""``smisk.wsgi``: the public name of the WSGI adapter, which lives in ``smisk.adapters.wsgi``."""

from smisk.adapters.wsgi import *  # noqa: F403
from smisk.adapters.wsgi import __all__ as __all__
