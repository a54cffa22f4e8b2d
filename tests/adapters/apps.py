"""The Flask and Starlette applications the suite serves behind nginx.

Each factory takes ``events`` (a list the app appends to, from any thread) and ``gate`` (a
threading.Event the test sets once it has read the first streamed chunk: a streamed response
whose first chunk were held back until the end would see the gate closed and say "late").
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from flask import Flask, Response, request, send_file
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

GATE_TIMEOUT = 10.0  # seconds a streaming app waits for the test to read its first chunk
NO_BUFFERING = {"X-Accel-Buffering": "no"}  # nginx passes each chunk on as it arrives


def flask_app(events: list[str], gate: threading.Event, file_path: str = "") -> Flask:
    app = Flask("smisk_test_flask")

    @app.route("/hello/<name>")
    def hello(name: str) -> str:
        return f"hello {name} at {request.script_root}|{request.path} q={request.args.get('q')}"

    @app.post("/form")
    def form() -> Any:
        files = {name: [f.filename, len(f.read())] for name, f in request.files.items()}
        return {"form": dict(request.form.items()), "files": files}

    @app.route("/stream")
    def stream() -> Response:
        def generate() -> Iterator[bytes]:
            yield b"first;"
            yield b"second;" if gate.wait(GATE_TIMEOUT) else b"late;"

        return Response(generate(), headers=NO_BUFFERING)

    @app.route("/forever")
    def forever() -> Response:
        def generate() -> Iterator[bytes]:
            try:
                while True:
                    yield b"x" * 4096
                    time.sleep(0.002)
            finally:
                events.append("generator closed")

        return Response(generate(), headers=NO_BUFFERING)

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.route("/file")
    def file() -> Response:
        return send_file(file_path, mimetype="application/octet-stream")

    return app


def starlette_app(events: list[str], gate: threading.Event) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"started": "yes"}
        events.append("shutdown")

    async def hello(request: Request) -> PlainTextResponse:
        name, q = request.path_params["name"], request.query_params.get("q")
        state = request.state.started
        return PlainTextResponse(f"hello {name} at {request.url.path} q={q} state={state}")

    async def form(request: Request) -> JSONResponse:
        fields, files = {}, {}
        async with request.form() as data:
            for name, value in data.items():
                if isinstance(value, str):
                    fields[name] = value
                else:
                    files[name] = [value.filename, len(await value.read())]
        return JSONResponse({"form": fields, "files": files})

    async def stream(request: Request) -> StreamingResponse:
        async def generate() -> AsyncIterator[bytes]:
            yield b"first;"
            opened = await asyncio.to_thread(gate.wait, GATE_TIMEOUT)
            yield b"second;" if opened else b"late;"

        return StreamingResponse(generate(), headers=NO_BUFFERING)

    async def forever(request: Request) -> StreamingResponse:
        async def generate() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"x" * 4096
                    await asyncio.sleep(0.002)
            finally:
                events.append("generator closed")

        return StreamingResponse(generate(), headers=NO_BUFFERING)

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    routes = [
        Route("/hello/{name}", hello),
        Route("/form", form, methods=["POST"]),
        Route("/stream", stream),
        Route("/forever", forever),
        Route("/boom", boom),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type."""
    boundary = "smisk-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
