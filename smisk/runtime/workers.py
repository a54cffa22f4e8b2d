"""The process model: a supervisor that binds once and forks workers, each with its own loop.

Rules: the supervisor (parent) never runs an event loop or application code: it waits in
select() on a signal wake-up pipe and the workers' status pipes, with a timeout only when a timer
is due (restart backoff, kill deadline, ``--reload`` polling). Workers report ``READY``,
``RETIRING`` (``--max-requests``) and ``ERROR <message>`` one line each on their status pipe.
A worker leaves with ``os._exit`` so nothing inherited from the parent runs twice.

Signals to the supervisor: TERM/INT graceful stop, QUIT immediate stop, HUP a new generation with
freshly imported code that replaces the old one once it is ready, USR1 reopen log files (also in
workers), TTIN/TTOU one worker more/less.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

from smisk.core.forms import remove_uploads_of
from smisk.runtime.embed import EmbeddedServer
from smisk.runtime.ops import DEFAULT_MAX_QUEUE_TIME, CounterBlock, OpsConfig, reopen_logs
from smisk.runtime.ops.status import DEFAULT_STATUS_ALLOW
from smisk.runtime.reload import POLL_INTERVAL, ImportFailed, ModuleWatcher
from smisk.server import Listener
from smisk.server.listener import DEFAULT_BACKLOG

__all__ = [
    "ServeConfig",
    "Supervisor",
    "TargetSource",
    "new_loop",
    "reopen_log_files",
    "run_forked",
    "run_worker",
]

log = logging.getLogger("smisk")

EXIT_START_FAILED = 3  # a worker's status when the application could not start
BACKOFF_BASE = 0.1  # seconds before the first restart of a worker that died
BACKOFF_MAX = 10.0  # a crash loop settles at one attempt per this many seconds
STABLE_UPTIME = 5.0  # a worker that lived this long resets the backoff
QUIT_GRACE = 2.0  # seconds workers get after SIGQUIT before SIGKILL
KILL_MARGIN = 5.0  # seconds beyond --graceful-timeout before stuck workers get SIGKILL
READY_TIMEOUT = 60.0  # a new generation that is not ready by then is abandoned
# Counter slots per wanted worker (--status-path): a generation starting while the old one
# drains, and workers recycled by --max-requests, each hold a slot until they exit.
SLOTS_PER_WORKER = 4
SPARE_SLOTS = 16  # for SIGTTIN
SUPERVISOR_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What smisk-serve was asked to do (also built by ``Application.run()`` with forks)."""

    binds: tuple[str, ...] = ()
    http: tuple[str, ...] = ()
    workers: int = 1
    threads: int | None = None
    backlog: int = DEFAULT_BACKLOG
    max_requests: int = 0
    graceful_timeout: float = 30.0
    loop: str = "auto"
    reload: bool = False
    access_log: str | None = None
    status_path: str | None = None
    status_allow: str = DEFAULT_STATUS_ALLOW
    slow_request_timeout: float = 0.0
    request_timeout: float = 0.0
    max_queue: int | None = None
    max_queue_time: float = DEFAULT_MAX_QUEUE_TIME
    access_log_file: str | None = None
    interface: str = "smisk"  # or "wsgi" / "asgi" (smisk.runtime.interfaces)
    mount: str = ""  # WSGI SCRIPT_NAME / ASGI root_path prefix
    forwarded_allow_ips: str = ""  # proxies whose X-Forwarded-* headers count (none by default)
    env: str | None = None  # smisk.runtime.mode; None (Application.run()): the app decides

    @property
    def supervised(self) -> bool:
        """True when a supervisor is needed: several workers, recycling or reloading."""
        return self.workers > 1 or self.max_requests > 0 or self.reload

    def ops(self) -> OpsConfig:
        """The operations options (``smisk.runtime.ops``); raises ValueError for a bad one."""
        return OpsConfig(
            access_log=self.access_log,
            access_log_file=self.access_log_file,
            status_path=self.status_path,
            status_allow=self.status_allow,
            slow_request_timeout=self.slow_request_timeout,
            request_timeout=self.request_timeout,
            max_queue=self.max_queue,
            max_queue_time=self.max_queue_time,
        )


class TargetSource(Protocol):
    """Where the application comes from: ``smisk.runtime.reload.AppImporter`` or a fixed instance."""

    def load(self) -> Any:
        """The target (Application class, instance or factory)."""

    def reload(self) -> Any:
        """The target from freshly imported code (raises ImportFailed)."""

    def files(self) -> list[str]:
        """Source files to watch for ``--reload``."""


class FixedTarget:
    """An application already in memory (``Application.run()``): reloading re-forks it."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def load(self) -> Any:
        """The application."""
        return self.target

    def reload(self) -> Any:
        """The same application (its code cannot be imported again)."""
        return self.target

    def files(self) -> list[str]:
        """Nothing to watch."""
        return []


# -- one worker ----------------------------------------------------------------------------------


def uvloop_available() -> bool:
    """True when uvloop can be imported."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop for ``uvloop`` (and ``auto`` when installed), else asyncio's."""
    if kind == "uvloop" or (kind == "auto" and uvloop_available()):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def reopen_log_files() -> None:
    """Reopen every logging file handler and access log (after logrotate moved the files)."""
    reopen_logs()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    old = handler.setStream(handler._open())
                    if old is not None:
                        old.close()
                finally:
                    handler.release()


class StatusPipe:
    """The worker's end of its status pipe (None in single-process mode: lines are logged)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def send(self, line: str) -> None:
        """Tell the supervisor ``line`` (one line, best effort)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, line.replace("\n", " ").encode("utf-8", "replace") + b"\n")


def run_worker(
    target: Any,
    listeners: Sequence[Listener],
    http_listeners: Sequence[Listener],
    config: ServeConfig,
    status: StatusPipe,
    counters: tuple[CounterBlock, int] | None = None,
) -> int:
    """Serve ``target`` on its own new loop until a signal, ``exit()`` or ``--max-requests``;
    return the exit status (``EXIT_START_FAILED`` when the application could not start).
    ``counters`` is the shared counter block and this worker's slot (``--status-path``)."""
    loop = new_loop(config.loop)
    try:
        return loop.run_until_complete(
            _worker_main(target, listeners, http_listeners, config, status, counters)
        )
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


async def _worker_main(
    target: Any,
    listeners: Sequence[Listener],
    http_listeners: Sequence[Listener],
    config: ServeConfig,
    status: StatusPipe,
    counters: tuple[CounterBlock, int] | None = None,
) -> int:
    block, slot = counters if counters is not None else (None, 1)
    try:
        embedded = EmbeddedServer(
            target,
            listeners=listeners,
            http_listeners=http_listeners,
            threads=config.threads,
            graceful_timeout=config.graceful_timeout,
            max_requests=config.max_requests,
            on_retire=lambda: status.send("RETIRING"),
            ops=config.ops(),
            ops_block=block,
            ops_slot=slot,
            interface=config.interface,
            mount=config.mount,
            forwarded_allow_ips=config.forwarded_allow_ips,
            env=config.env,
        )
        await embedded.start()
    except Exception as error:
        log.error("the application failed to start", exc_info=True)
        status.send(f"ERROR the application failed to start: {type(error).__name__}: {error}")
        return EXIT_START_FAILED
    _worker_signals(asyncio.get_running_loop(), embedded)
    # A worker forked by the supervisor starts with these blocked (Supervisor._spawn): what
    # arrived meanwhile is delivered now, to the handlers just installed.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)
    # What is loaded by now (modules, the app) lives as long as the worker: moved out of the
    # cyclic collector's generations, it is not traversed again by every collection.
    gc.collect()
    gc.freeze()
    status.send("READY")
    if status.fd is None:
        where = ", ".join(str(a) for a in embedded.addresses + embedded.http_addresses)
        log.info("ready: serving on %s (pid %d)", where, os.getpid())
    try:
        await embedded.wait_stopped()
    finally:
        # The handlers stay until the loop closes: a second SIGTERM while draining (a process
        # group signalled twice) must not kill the worker with in-flight requests.
        await embedded.close()
    return 0


def _worker_signals(loop: asyncio.AbstractEventLoop, embedded: EmbeddedServer) -> list[int]:
    handlers: dict[int, Any] = {
        signal.SIGTERM: embedded.request_stop,
        signal.SIGINT: embedded.request_stop,
        signal.SIGHUP: embedded.request_stop,
        signal.SIGQUIT: lambda: embedded.request_stop(0),
        signal.SIGUSR1: reopen_log_files,
        signal.SIGTTIN: _needs_supervisor,
        signal.SIGTTOU: _needs_supervisor,
    }
    for signum, callback in handlers.items():
        loop.add_signal_handler(signum, callback)
    return list(handlers)


def _needs_supervisor() -> None:
    log.warning("SIGTTIN/SIGTTOU change the worker count only under a supervisor (--workers 2+)")


# -- the supervisor ------------------------------------------------------------------------------


class WorkerProcess:
    """The supervisor's record of one worker."""

    __slots__ = (
        "buffer",
        "error",
        "generation",
        "pid",
        "ready",
        "retiring",
        "slot",
        "started",
        "status_fd",
    )

    def __init__(self, pid: int, generation: int, status_fd: int, slot: int | None) -> None:
        self.pid = pid
        self.slot = slot  # in the shared counter block (--status-path)
        self.generation = generation
        self.status_fd: int | None = status_fd
        self.buffer = b""
        self.ready = False
        self.retiring = False
        self.error: str | None = None
        self.started = time.monotonic()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker (it may have exited already)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)


def describe_exit(status: int) -> str:
    """``exit status N`` or ``killed by SIGNAME`` for a waitpid() status."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return f"killed by {name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """Keeps ``config.workers`` workers serving ``source``'s application on ``listeners``."""

    def __init__(
        self,
        source: TargetSource,
        target: Any,
        config: ServeConfig,
        listeners: Sequence[Listener],
        http_listeners: Sequence[Listener] = (),
    ) -> None:
        self.source = source
        self.target = target
        self.config = config
        self.size = max(1, config.workers)
        self.listeners = list(listeners)
        self.http_listeners = list(http_listeners)
        self.workers: dict[int, WorkerProcess] = {}
        self.generation = 1
        self.pending: tuple[int, Any] | None = None  # (generation, target) being started
        self.pending_deadline = 0.0
        self.error: str | None = None  # why start-up failed
        self.stopping = False
        self.announced = False
        self.failures = 0
        self.next_spawn = 0.0
        self.kill_deadline: float | None = None
        self.watcher = ModuleWatcher(source.files()) if config.reload else None
        # Shared before any fork: every worker answers the status path with all workers' counts.
        self.counters = (
            CounterBlock(self.size * SLOTS_PER_WORKER + SPARE_SLOTS, shared=True)
            if config.status_path
            else None
        )
        self.next_poll = time.monotonic() + POLL_INTERVAL
        self._signals: list[int] = []
        self._previous: dict[int, Any] = {}
        self._wake_r, self._wake_w = -1, -1

    # -- main loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; returns 0, or 1 when the application could not start
        (``error`` says why)."""
        self._install_signals()
        try:
            self._maintain()
            while self.workers or not self.stopping:
                self._wait()
                self._handle_signals()
                self._reap()
                self._on_timers()
            return 1 if self.error else 0
        finally:
            self._restore_signals()
            for listener in self.listeners + self.http_listeners:
                listener.close()

    def _wait(self) -> None:
        by_fd = {w.status_fd: w for w in self.workers.values() if w.status_fd is not None}
        readable, _, _ = select.select([self._wake_r, *by_fd], [], [], self._timeout())
        for fd in readable:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 512)
            else:
                self._read_status(by_fd[fd])

    def _timeout(self) -> float | None:
        now = time.monotonic()
        due = [self.kill_deadline]
        if not self.stopping:
            due.append(self.next_spawn if self._missing() else None)
            due.append(self.next_poll if self.watcher is not None else None)
            due.append(self.pending_deadline if self.pending is not None else None)
        times = [t for t in due if t is not None]
        return max(0.0, min(times) - now) if times else None

    def _on_timers(self) -> None:
        now = time.monotonic()
        if self.kill_deadline is not None and now >= self.kill_deadline:
            for worker in self.workers.values():
                log.warning("worker %d did not stop in time; killing it", worker.pid)
                worker.signal(signal.SIGKILL)
            self.kill_deadline = None
        if self.stopping:
            return
        if self.watcher is not None and now >= self.next_poll:
            self.next_poll = now + POLL_INTERVAL
            changed = self.watcher.changed()
            if changed:
                log.info("%s changed; reloading", changed[0])
                self.reload()
        if self.pending is not None and now >= self.pending_deadline:
            self._abandon_pending(f"not ready within {READY_TIMEOUT:.0f} s")
        self._maintain()

    # -- workers -----------------------------------------------------------------------------

    def _current(self) -> list[WorkerProcess]:
        return [
            w for w in self.workers.values() if w.generation == self.generation and not w.retiring
        ]

    def _missing(self) -> int:
        return self.size - len(self._current())

    def _maintain(self) -> None:
        if self.stopping or time.monotonic() < self.next_spawn:
            return
        for _ in range(self._missing()):
            self._spawn(self.target, self.generation)

    def _spawn(self, target: Any, generation: int) -> None:
        slot = self.counters.claim() if self.counters is not None else None
        status_r, status_w = os.pipe()
        # Blocked across fork(): a signal sent to the new worker before it has handlers of its
        # own waits for them (_worker_main unblocks) instead of reaching the supervisor's.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        if pid == 0:
            os.close(status_r)
            self._become_worker(target, status_w, slot)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(status_w)
        os.set_blocking(status_r, False)
        if slot is not None and self.counters is not None:
            self.counters.assign(slot, pid)
        self.workers[pid] = WorkerProcess(pid, generation, status_r, slot)
        log.debug("started worker %d (generation %d)", pid, generation)

    def _become_worker(self, target: Any, status_fd: int, slot: int | None) -> None:
        code = 1
        try:
            self._restore_signals()
            for signum in (signal.SIGTTIN, signal.SIGTTOU):
                signal.signal(signum, signal.SIG_IGN)
            for worker in self.workers.values():
                if worker.status_fd is not None:
                    os.close(worker.status_fd)
            listeners = [Listener(lst.socket, lst.bound_address) for lst in self.listeners]
            http = [Listener(lst.socket, lst.bound_address) for lst in self.http_listeners]
            counters = (self.counters, slot) if self.counters is not None and slot else None
            code = run_worker(target, listeners, http, self.config, StatusPipe(status_fd), counters)
        except BaseException:
            log.exception("worker %d failed", os.getpid())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _read_status(self, worker: WorkerProcess) -> None:
        """Read what the worker wrote; returns at EOF (the fd is then closed) or when empty."""
        fd = worker.status_fd
        if fd is None:
            return
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not data:
            os.close(fd)
            worker.status_fd = None
            return
        worker.buffer += data
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            self._on_status(worker, line.decode("utf-8", "replace"))

    def _on_status(self, worker: WorkerProcess, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "READY":
            worker.ready = True
            self._on_ready(worker)
        elif word == "RETIRING":
            worker.retiring = True  # its replacement starts now, while it drains
        elif word == "ERROR":
            worker.error = rest

    def _on_ready(self, worker: WorkerProcess) -> None:
        if self.pending is not None and worker.generation == self.pending[0]:
            ready = [w for w in self.workers.values() if w.generation == worker.generation]
            if sum(w.ready for w in ready) >= self.size:
                self._promote_pending()
        elif not self.announced and len([w for w in self._current() if w.ready]) >= self.size:
            self.announced = True
            where = ", ".join(
                str(lst.bound_address) for lst in self.listeners + self.http_listeners
            )
            log.info(
                "ready: %d workers serving on %s (supervisor pid %d)", self.size, where, os.getpid()
            )

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                if worker.slot is not None and self.counters is not None:
                    self.counters.release(worker.slot)  # its totals stay in the aggregate
                self._drain_status(worker)
                self._worker_exited(worker, status)

    def _drain_status(self, worker: WorkerProcess) -> None:
        """Read the last lines of an exited worker (its ERROR message), then close the pipe."""
        for _ in range(64):  # bounded: a pipe holds at most 64 KiB
            fd = worker.status_fd
            if fd is None or not select.select([fd], [], [], 0)[0]:
                break
            self._read_status(worker)
        if worker.status_fd is not None:
            os.close(worker.status_fd)
            worker.status_fd = None

    def _worker_exited(self, worker: WorkerProcess, status: int) -> None:
        reason = describe_exit(status)
        left = remove_uploads_of(worker.pid)  # a worker that was killed cannot clean up
        if left:
            log.warning("removed %d upload file(s) left by worker %d", left, worker.pid)
        current = worker.generation == self.generation
        if self.stopping or worker.retiring or not (current or self._is_pending(worker)):
            log.info("worker %d (generation %d) exited: %s", worker.pid, worker.generation, reason)
            return
        why = worker.error or reason
        if self._is_pending(worker):
            self._abandon_pending(f"worker {worker.pid} {why}")
            return
        if not self.announced and worker.error is not None:
            self._fail(worker.error)
            return
        self._back_off(worker)
        delay = max(0.0, self.next_spawn - time.monotonic())
        log.warning("worker %d died (%s); restarting in %.1f s", worker.pid, why, delay)

    def _back_off(self, worker: WorkerProcess) -> None:
        now = time.monotonic()
        if now - worker.started >= STABLE_UPTIME:
            self.failures = 0
        self.failures += 1
        self.next_spawn = now + min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self.failures - 1))

    def _fail(self, message: str) -> None:
        self.error = message
        self.stop(signal.SIGTERM)

    # -- generations -------------------------------------------------------------------------

    def _is_pending(self, worker: WorkerProcess) -> bool:
        return self.pending is not None and worker.generation == self.pending[0]

    def reload(self) -> None:
        """Start a new generation from freshly imported code; the old one drains once the
        new one is ready (and keeps serving if the new code fails)."""
        if self.pending is not None:
            log.warning("a reload is already in progress")
            return
        try:
            target = self.source.reload()
        except ImportFailed as error:
            log.error("reload failed: %s; generation %d keeps serving", error, self.generation)
            return
        generation = self.generation + 1
        self.pending = (generation, target)
        self.pending_deadline = time.monotonic() + READY_TIMEOUT
        log.info("starting generation %d", generation)
        for _ in range(self.size):
            self._spawn(target, generation)

    def _promote_pending(self) -> None:
        assert self.pending is not None
        old = self._current()
        self.generation, self.target = self.pending
        self.pending = None
        self.failures = 0
        for worker in old:
            worker.retiring = True
            worker.signal(signal.SIGTERM)
        if self.watcher is not None:
            self.watcher.watch(self.source.files())
        log.info("generation %d serving; %d old workers draining", self.generation, len(old))

    def _abandon_pending(self, why: str) -> None:
        assert self.pending is not None
        generation = self.pending[0]
        self.pending = None
        for worker in self.workers.values():
            if worker.generation == generation:
                worker.retiring = True
                worker.signal(signal.SIGTERM)
        log.error("reload failed: %s; generation %d keeps serving", why, self.generation)

    # -- signals -----------------------------------------------------------------------------

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop every worker: gracefully (SIGTERM) or at once (SIGQUIT)."""
        grace = (
            QUIT_GRACE if signum == signal.SIGQUIT else self.config.graceful_timeout + KILL_MARGIN
        )
        if not self.stopping or signum == signal.SIGQUIT:
            self.kill_deadline = time.monotonic() + grace
        self.stopping = True
        for worker in self.workers.values():
            worker.signal(signum)

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in SUPERVISOR_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _restore_signals(self) -> None:
        if self._wake_w < 0:
            return
        signal.set_wakeup_fd(-1)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                log.info("%s: stopping", signal.Signals(signum).name)
                self.stop(signal.SIGQUIT if signum == signal.SIGQUIT else signal.SIGTERM)
            elif self.stopping or signum == signal.SIGCHLD:
                continue
            elif signum == signal.SIGHUP:
                log.info("SIGHUP: reloading")
                self.reload()
            elif signum == signal.SIGUSR1:
                reopen_log_files()
                for worker in self.workers.values():
                    worker.signal(signal.SIGUSR1)
            elif signum in (signal.SIGTTIN, signal.SIGTTOU):
                self._resize(1 if signum == signal.SIGTTIN else -1)

    def _resize(self, delta: int) -> None:
        if delta < 0 and self.size <= 1:
            log.warning("SIGTTOU: keeping the last worker")
            return
        self.size += delta
        log.info("%d workers wanted", self.size)
        if delta < 0:
            current = self._current()
            newest = max(current, key=lambda w: w.started)
            newest.retiring = True
            newest.signal(signal.SIGTERM)


def run_forked(app: Any, listener: Listener) -> None:
    """``Application.run()`` with ``forks = N``: a supervisor keeps N + 1 workers serving (as
    many processes as the classic server ran) until SIGTERM/SIGINT."""
    config = ServeConfig(workers=app.forks + 1, loop="auto")
    supervisor = Supervisor(FixedTarget(app), app, config, [listener])
    if supervisor.run() != 0:
        raise OSError(supervisor.error or "the application failed to start")
