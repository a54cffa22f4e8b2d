"""File uploads: ``request.files`` and ``request.post`` from a multipart form.

Run: ``smisk-serve examples.uploads:App --bind 127.0.0.1:5000``, then
``curl -F note=hi -F file=@README.md http://.../`` through a front end.

Each uploaded file is already on disk (a private 0600 temp file) when ``service()`` runs;
smisk removes it when the request ends, so keep it by copying or moving it away.
"""

from __future__ import annotations

import hashlib
import html

from smisk.core import Application

FORM = """<form method="post" enctype="multipart/form-data">
<input name="note"> <input type="file" name="file"> <button>Send</button></form>
"""


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


class App(Application):
    def application_will_start(self) -> None:
        self.request.max_multipart_size = 64 * 1024 * 1024  # larger bodies get 413

    def service(self) -> None:
        if self.request.method != "POST":
            self.response(FORM)
            return
        self.response.headers.append("Content-Type: text/plain; charset=utf-8")
        self.response(f"note: {html.escape(str(self.request.post.get('note', '')))}\n")
        uploads = self.request.files.get("file", [])
        for upload in uploads if isinstance(uploads, list) else [uploads]:
            self.response(
                f"{upload['filename']}: {upload['size']} bytes, {upload['content_type']}, "
                f"sha256 {sha256_of(upload['path'])}\n"
            )
