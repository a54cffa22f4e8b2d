"""The smisk applications the benchmarks serve: ``smisk-serve apps:AsyncHello`` (run here).

Rules: one class per scenario and handler kind, so each scenario runs in a fresh server and a
hello handler pays for nothing else (no routing). Answers match the peers in ``peers/``.
"""

from __future__ import annotations

from smisk.core import Application

LARGE = b"x" * 65536  # the "64 KiB response" scenario
HUGE_SIZE = 100 * 1024 * 1024  # the "100 MiB response to a slow reader" scenario


class AsyncHello(Application):
    async def service(self) -> None:
        self.response.headers = ["Content-Type: text/plain"]
        self.response("Hello, World!")


class SyncHello(Application):
    def service(self) -> None:
        self.response.headers = ["Content-Type: text/plain"]
        self.response("Hello, World!")


def _octet_headers(length: int | str) -> list[str]:
    return ["Content-Type: application/octet-stream", f"Content-Length: {length}"]


class AsyncLarge(Application):
    async def service(self) -> None:
        self.response.headers = _octet_headers(len(LARGE))
        await self.response.awrite(LARGE)


class SyncLarge(Application):
    def service(self) -> None:
        self.response.headers = _octet_headers(len(LARGE))
        self.response.write(LARGE)


# The echo apps read the whole body before answering: nginx reads no response before it has
# sent the whole request, so echoing while reading deadlocks once the socket buffers fill.


class AsyncEcho(Application):
    async def service(self) -> None:
        body = await self.request.input.aread()
        self.response.headers = _octet_headers(len(body))
        await self.response.awrite(body)


class SyncEcho(Application):
    def service(self) -> None:
        body = self.request.input.read()
        self.response.headers = _octet_headers(len(body))
        self.response.write(body)


def _upload_summary(files: dict[str, object]) -> str:
    sizes = [f["size"] for f in files.values() if isinstance(f, dict)]
    return f"{len(sizes)} file(s), {sum(sizes)} bytes\n"


class AsyncUpload(Application):
    async def service(self) -> None:
        self.response.headers = ["Content-Type: text/plain"]
        self.response(_upload_summary(self.request.files))


class SyncUpload(Application):
    def service(self) -> None:
        self.response.headers = ["Content-Type: text/plain"]
        self.response(_upload_summary(self.request.files))


def _count_visit(app: Application) -> str:
    count = (app.request.session or 0) + 1
    app.request.session = count
    return f"visit {count}\n"


class AsyncSession(Application):
    async def service(self) -> None:
        await self.request.load_session()  # async services load the session explicitly
        self.response.headers = ["Content-Type: text/plain"]
        self.response(_count_visit(self))


class SyncSession(Application):
    def service(self) -> None:
        self.response.headers = ["Content-Type: text/plain"]
        self.response(_count_visit(self))


class AsyncHuge(Application):
    async def service(self) -> None:
        self.response.headers = _octet_headers(HUGE_SIZE)
        for _ in range(HUGE_SIZE // len(LARGE)):
            await self.response.awrite(LARGE)


class SyncHuge(Application):
    def service(self) -> None:
        self.response.headers = _octet_headers(HUGE_SIZE)
        for _ in range(HUGE_SIZE // len(LARGE)):
            self.response.write(LARGE)
