"""Child process for the kill -9 test: rewrite a few sessions in a tight loop until killed.

``python -m tests.sessions.writer atomic|naive PREFIX ID[,ID...]``: ``atomic`` writes through
FileSessionStore; ``naive`` truncates and rewrites the file in place (the classic way), so the
test can show that its check does catch torn files.
"""

from __future__ import annotations

import sys
from typing import Any

from smisk.sessions import FileSessionStore

PAYLOAD = "x" * 200_000  # big enough that one write takes many system calls
CHUNK = 4096  # bytes per write() in naive mode


def naive_write(store: FileSessionStore, session_id: str, data: Any) -> None:
    blob = store.serializer.dumps(data)
    with open(store.path(session_id), "wb") as handle:
        for start in range(0, len(blob), CHUNK):
            handle.write(blob[start : start + CHUNK])
            handle.flush()


def main(mode: str, prefix: str, ids: list[str]) -> None:
    store = FileSessionStore(prefix, gc_probability=0)
    write = store.write if mode == "atomic" else lambda i, d: naive_write(store, i, d)
    for session_id in ids:
        store.write(session_id, {"round": -1, "payload": PAYLOAD})
    print("WRITING", flush=True)
    round_ = 0
    while True:
        for session_id in ids:
            write(session_id, {"round": round_, "payload": PAYLOAD})
        round_ += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3].split(","))
