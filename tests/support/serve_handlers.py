"""Child-process entry point: serve the test handlers on the address in argv[1], or on the
listening socket inherited on fd 0 when argv[1] is ``inherit`` (spawn-fcgi, mod_fcgid)."""

from __future__ import annotations

import asyncio
import signal
import sys

from smisk.server import Listener, Server, bind_listener, inherited_listener
from tests.support.handlers import router


async def main(address: str) -> None:
    server = Server(router)
    await server.start([_listener(address)])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", server.addresses[0], flush=True)
    await stop.wait()
    await server.close(5)


def _listener(address: str) -> Listener:
    if address != "inherit":
        return bind_listener(address)
    listener = inherited_listener()
    if listener is None:
        raise SystemExit("fd 0 is not a listening socket")
    return listener


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
