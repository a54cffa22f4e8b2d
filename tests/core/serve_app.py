"""Child-process runner: the classic way to serve, ``bind(address)`` then ``app.run()``.

``python -m tests.core.serve_app ADDRESS MODE [SETTINGS_JSON]`` serves the test app of MODE
("sync"/"async"). Prints ``READY <listening()>`` once bound, ``WILL_START``/``DID_STOP`` from the
lifecycle hooks and ``STOPPED <listening()>`` when ``run()`` has returned (``/exit`` calls
``app.exit()``). Used for RSS measurements and for ``run``/``exit``/``bind``/``listening``.
"""

from __future__ import annotations

import json
import sys

from smisk.core import bind, listening
from tests.core.apps import make_app


def main(address: str, mode: str, settings: dict[str, object]) -> None:
    instance = make_app(mode, **settings)
    type(instance).application_will_start = lambda self: print("WILL_START", flush=True)  # type: ignore[method-assign]
    type(instance).application_did_stop = lambda self: print("DID_STOP", flush=True)  # type: ignore[method-assign]
    bind(address)
    print("READY", listening(), flush=True)
    instance.run()
    print("STOPPED", listening(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
