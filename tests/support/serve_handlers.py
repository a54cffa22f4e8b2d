"""Child-process entry point: serve the test handlers on the address in argv[1]."""

from __future__ import annotations

import asyncio
import signal
import sys

from smisk.server import Server, bind_listener
from tests.support.handlers import router


async def main(address: str) -> None:
    server = Server(router)
    await server.start([bind_listener(address)])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", server.addresses[0], flush=True)
    await stop.wait()
    await server.close(5)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
