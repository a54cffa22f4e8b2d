# Rules: every method does blocking file I/O, so it runs in a handler thread or a worker thread,
# never on the event loop (the session binding sees to that through ``blocking = True``).
"""FileSessionStore: one file per session, written atomically (temp file + rename), mode 0600."""

from __future__ import annotations

import contextlib
import os
import random
import re
import stat
import tempfile
import threading
import time
from typing import Any

from smisk.errors import InvalidSessionError
from smisk.sessions.base import SessionStore
from smisk.sessions.ids import check_id

__all__ = ["FileSessionStore", "default_file_prefix"]

TEMP_SUFFIX = ".tmp"  # a write in progress: <prefix><id>.<random>.tmp, renamed when complete


def default_file_prefix() -> str:
    """``<tmpdir>/smisk-sessions-<uid>/smisk-sess.``: a private directory, not shared /tmp."""
    return os.path.join(tempfile.gettempdir(), f"smisk-sessions-{os.geteuid()}", "smisk-sess.")


class FileSessionStore(SessionStore):
    """Sessions as files named ``file_prefix + id``.

    Files are created 0600 in a directory created 0700; a write goes to a temp file that is
    renamed over the session file, so readers (and a process killed mid-write) never leave or see
    a torn session. With probability ``gc_probability`` a read first removes this store's expired
    files (and temp files orphaned by a crash); nothing else in the directory is touched.
    ``fsync=True`` also makes writes survive a power loss, at the cost of a disk flush each.
    """

    gc_probability: float = 0.1
    fsync: bool = False

    def __init__(
        self,
        file_prefix: str | None = None,
        *,
        gc_probability: float | None = None,
        fsync: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.file_prefix = file_prefix if file_prefix is not None else default_file_prefix()
        if gc_probability is not None:
            self.gc_probability = gc_probability
        if fsync is not None:
            self.fsync = fsync
        self._gc_running = threading.Lock()

    # -- names -------------------------------------------------------------------------------

    @property
    def directory(self) -> str:
        """The directory the files live in (``file_prefix`` up to its last ``/``)."""
        return os.path.dirname(self.file_prefix) or "."

    def path(self, session_id: str) -> str:
        """Path to the file of ``session_id`` (a malformed id raises, it never makes a path)."""
        return self.file_prefix + check_id(session_id)

    def _pattern(self) -> re.Pattern[str]:
        """Names of this store's files: session files and temp files of interrupted writes."""
        base = re.escape(os.path.basename(self.file_prefix))
        return re.compile(rf"{base}[0-9a-v]{{32}}(?:\.[A-Za-z0-9_]+{re.escape(TEMP_SUFFIX)})?")

    # -- the store interface -----------------------------------------------------------------

    def read(self, session_id: str) -> Any:
        """The data of ``session_id``; InvalidSessionError when missing, expired or invalid."""
        path = self.path(session_id)
        if random.random() < self.gc_probability:
            self.collect()
        try:
            with open(path, "rb") as handle:
                age = time.time() - os.fstat(handle.fileno()).st_mtime
                blob = handle.read() if age <= self.ttl else None
        except FileNotFoundError:
            raise InvalidSessionError("no data") from None
        if blob is None:
            self._unlink(path)
            raise InvalidSessionError("data too old")
        return self.serializer.loads(blob)

    def write(self, session_id: str, data: Any) -> None:
        """Write ``data`` to a temp file and rename it over the session file."""
        path = self.path(session_id)
        blob = self.serializer.dumps(data)
        self._ensure_directory()
        fd, temp = tempfile.mkstemp(  # mode 0600, O_EXCL: never follows a planted link
            prefix=os.path.basename(path) + ".", suffix=TEMP_SUFFIX, dir=self.directory
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            self._unlink(temp)
            raise

    def refresh(self, session_id: str) -> None:
        """Touch the file (its mtime is the session's last use)."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path(session_id))

    def destroy(self, session_id: str) -> None:
        """Remove the file; no error if it is gone."""
        self._unlink(self.path(session_id))

    # -- housekeeping ------------------------------------------------------------------------

    def collect(self) -> int:
        """Remove this store's files older than ``ttl``; returns how many were removed.

        Only regular files (not links) whose whole name is ``<prefix><id>`` or a temp file of
        one are candidates. One collection at a time per store; a concurrent call returns 0.
        """
        if not self._gc_running.acquire(blocking=False):
            return 0
        try:
            return self._collect()
        finally:
            self._gc_running.release()

    def _collect(self) -> int:
        pattern, cutoff, removed = self._pattern(), time.time() - self.ttl, 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if pattern.fullmatch(entry.name) and self._expired(entry, cutoff):
                removed += self._unlink(entry.path)
        return removed

    @staticmethod
    def _expired(entry: os.DirEntry[str], cutoff: float) -> bool:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff

    @staticmethod
    def _unlink(path: str) -> int:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return 1

    def _ensure_directory(self) -> None:
        """Create the directory (0700) on first write; refuse one others could swap files in."""
        directory = self.directory
        if self.__dict__.get("_checked_directory") == directory:
            return
        os.makedirs(directory, mode=0o700, exist_ok=True)
        mode = os.stat(directory).st_mode
        if mode & 0o022 and not mode & stat.S_ISVTX:
            raise PermissionError(
                f"session directory {directory!r} is writable by others without the sticky bit"
            )
        self.__dict__["_checked_directory"] = directory
