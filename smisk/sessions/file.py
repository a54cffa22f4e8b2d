# Rules: every method does blocking file I/O, so it runs in a handler thread or a worker thread,
# never on the event loop (the session binding sees to that through ``blocking = True``).
"""FileSessionStore: one file per session, written atomically (temp file + rename), mode 0600."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import random
import re
import stat
import tempfile
import threading
import time
from typing import Any

from smisk.core.errors import InvalidSessionError
from smisk.sessions.base import SessionBusy, SessionStore
from smisk.sessions.ids import check_id

__all__ = ["FileSessionStore", "default_file_prefix"]

TEMP_SUFFIX = ".tmp"  # a write in progress: <prefix><id>.<random>.tmp, renamed when complete
LOCK_SUFFIX = ".lock"  # <prefix><id>.lock: flock()ed by the request holding the session's lock
LOCK_POLL_FIRST = 0.002  # seconds between tries for a lock another process holds: doubling ...
LOCK_POLL_MAX = 0.05  # ... up to this


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

    With ``locking=True`` the lock spans processes (``smisk-serve --workers N`` sharing the
    directory): on top of the per-process lock, the holder keeps an ``flock()`` on
    ``<prefix><id>.lock``. The kernel drops it when the holder's process dies; a holder that is
    alive keeps it until its request ends (the lease applies within a process only).
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
        self._file_locks: dict[str, int] = {}  # lock token -> the flock()ed descriptor

    # -- names -------------------------------------------------------------------------------

    @property
    def directory(self) -> str:
        """The directory the files live in (``file_prefix`` up to its last ``/``)."""
        return os.path.dirname(self.file_prefix) or "."

    def path(self, session_id: str) -> str:
        """Path to the file of ``session_id`` (a malformed id raises, it never makes a path)."""
        return self.file_prefix + check_id(session_id)

    def lock_path(self, session_id: str) -> str:
        """Path to the lock file of ``session_id``."""
        return self.path(session_id) + LOCK_SUFFIX

    def _pattern(self) -> re.Pattern[str]:
        """Names of this store's files: session files and temp files of interrupted writes."""
        base = re.escape(os.path.basename(self.file_prefix))
        return re.compile(rf"{base}[0-9a-v]{{32}}(?:\.[A-Za-z0-9_]+{re.escape(TEMP_SUFFIX)})?")

    def _lock_pattern(self) -> re.Pattern[str]:
        base = re.escape(os.path.basename(self.file_prefix))
        return re.compile(rf"{base}[0-9a-v]{{32}}{re.escape(LOCK_SUFFIX)}")

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

    # -- locking across processes ------------------------------------------------------------

    async def lock(self, session_id: str) -> str:
        """Wait for the lock on ``session_id`` in this process, then across processes (an
        ``flock()`` on its lock file); SessionBusy once ``lock_wait`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_wait
        token = await super().lock(session_id)
        try:
            self._file_locks[token] = await self._lock_file(self.lock_path(session_id), deadline)
        except BaseException:
            await super().unlock(session_id, token)
            raise
        return token

    async def unlock(self, session_id: str, token: str) -> None:
        """Release the lock taken by ``lock``."""
        fd = self._file_locks.pop(token, None)
        try:
            if fd is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, _unlock_file, self.lock_path(session_id), fd)
        finally:
            await super().unlock(session_id, token)

    async def _lock_file(self, path: str, deadline: float) -> int:
        loop = asyncio.get_running_loop()
        if not self._directory_checked():
            await loop.run_in_executor(None, self._ensure_directory)
        pause = LOCK_POLL_FIRST
        while True:
            attempt = loop.run_in_executor(None, _try_lock_file, path)
            try:
                fd = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                attempt.add_done_callback(functools.partial(_release_late_lock, path))
                raise
            if fd is not None:
                return fd
            if loop.time() >= deadline:
                raise SessionBusy("session is locked by another process; try again")
            await asyncio.sleep(min(pause, max(deadline - loop.time(), 0)))
            pause = min(pause * 2, LOCK_POLL_MAX)

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
        locks = self._lock_pattern()
        for entry in entries:
            if pattern.fullmatch(entry.name) and self._expired(entry, cutoff):
                removed += self._unlink(entry.path)
            elif locks.fullmatch(entry.name) and self._expired(entry, cutoff):
                removed += _remove_unheld_lock(entry.path)  # left by a process that died
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

    def _directory_checked(self) -> bool:
        return bool(self.__dict__.get("_checked_directory") == self.directory)

    def _ensure_directory(self) -> None:
        """Create the directory (0700) on first write; refuse one others could swap files in."""
        if self._directory_checked():
            return
        directory = self.directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        mode = os.stat(directory).st_mode
        if mode & 0o022 and not mode & stat.S_ISVTX:
            raise PermissionError(
                f"session directory {directory!r} is writable by others without the sticky bit"
            )
        self.__dict__["_checked_directory"] = directory


# -- lock files: blocking helpers, run in worker threads ---------------------------------------


def _try_lock_file(path: str) -> int | None:
    """An flock()ed descriptor of the lock file at ``path``, or None while another holds it.

    A holder removes the file when it releases it, so a lock taken on a file that is no longer
    the one at ``path`` is worth nothing: that case tries again with the new file.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _is_current(path, fd):
            return fd
        os.close(fd)  # locked a file its holder removed meanwhile


def _is_current(path: str, fd: int) -> bool:
    try:
        linked = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (linked.st_dev, linked.st_ino) == (held.st_dev, held.st_ino)


def _unlock_file(path: str, fd: int) -> None:
    """Remove the lock file while still holding it, then let go: a waiter that locks the old
    file sees it is gone and tries again."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)


def _release_late_lock(path: str, attempt: asyncio.Future[int | None]) -> None:
    """The lock a cancelled ``lock()`` got after all is given back (in a worker thread)."""
    if not attempt.cancelled() and attempt.exception() is None:
        fd = attempt.result()
        if fd is not None:
            asyncio.get_running_loop().run_in_executor(None, _unlock_file, path, fd)


def _remove_unheld_lock(path: str) -> int:
    """Remove a stale lock file only if nobody holds it; returns 1 if removed."""
    try:
        fd = _try_lock_file(path)
    except OSError:
        return 0
    if fd is None:
        return 0
    _unlock_file(path, fd)
    return 1
