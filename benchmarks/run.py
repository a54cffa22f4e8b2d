"""Benchmark smisk against its FastCGI peers, side by side, behind one nginx.

Rules: a benchmark, never a test. Every server gets its own unix socket; one nginx (one worker,
access log off) has a keep-alive and a no-keep-alive location per server; wrk drives it over
loopback. Each scenario starts its servers fresh, warms them up, then interleaves them round by
round; every figure is the median over rounds and is also shown as a ratio to fcgisgi on uvloop
measured in the same run. Every process started here is stopped by PID at the end, also on
Ctrl-C or an error.

    python benchmarks/run.py [--rounds 3] [--duration 5] [--only hello-ka,large]
                             [--servers 'smisk-*,fcgisgi-asgi-uvloop'] [--markdown PATH]

A full table takes about 20 minutes with ``--rounds 1 --duration 3``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import http.client
import importlib.util
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REFERENCE = "fcgisgi-asgi-uvloop"  # every ratio is against this server in the same scenario
MIB = 1024 * 1024
POOL = 32  # nginx's upstream keep-alive pool, wrk's connections, the C responder's threads
SMALL_POOL = 8  # the "pool smaller than the clients" upstream: most requests open a connection
CORES = os.cpu_count() or 1  # the scaling curve goes up to one worker per core
IDLE_CONNECTIONS = 1000  # the "idle keep-alive connections" scenario
BODY_APPS = ("Echo", "Upload")  # scenarios whose requests carry large bodies
SLOW_STALL = 1.5  # seconds the slow reader stops reading after the first bytes
RSS_SAMPLE_PERIOD = 0.05  # seconds between RSS samples while a load runs
READY_TIMEOUT = 20.0  # seconds a server may take to start listening
WARMUP_SECONDS = 1  # wrk run before the measured rounds (imports, caches, thread pools)
WRK_THREADS = 2  # wrk threads above POOL connections: one thread cannot open 1024 at once
SETTLE = 0.5  # seconds for started workers to finish importing before the idle RSS is read

# -- what runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One FastCGI server configuration."""

    name: str
    kind: str  # "c", "flup", "fcgisgi-asgi", "fcgisgi-wsgi", "uwsgi" or "smisk"
    threads: int = 1  # the C responder's accept loops; uWSGI's threads per process
    handler: str = ""  # smisk: "Async" or "Sync"
    loop: str = ""  # smisk: "asyncio" or "uvloop"
    workers: int = 1  # smisk or uWSGI processes
    options: tuple[str, ...] = ()  # smisk: more command-line options

    @property
    def is_smisk(self) -> bool:
        return self.kind == "smisk"


def _smisk(handler: str, loop: str, workers: int) -> Server:
    name = f"smisk-{handler.lower()}-{loop}-{workers}w"
    return Server(name, "smisk", handler=handler, loop=loop, workers=workers)


WIDE = 256  # the C responder's most threads: one per connection nginx opens at c=256
SCALE = sorted({1, 2, CORES})  # workers on the scaling curve: 1, 2, all cores
SERVERS = (
    Server("c-libfcgi-1t", "c", threads=1),
    Server(f"c-libfcgi-{POOL}t", "c", threads=POOL),
    Server(f"c-libfcgi-{WIDE}t", "c", threads=WIDE),
    Server("flup", "flup"),
    Server(REFERENCE, "fcgisgi-asgi"),
    Server("fcgisgi-wsgi", "fcgisgi-wsgi"),
    Server("uwsgi-1p", "uwsgi", threads=POOL),
    Server(f"uwsgi-{CORES}p", "uwsgi", threads=POOL, workers=CORES),
    *(_smisk(h, lp, w) for w in (1, 2) for h in ("Async", "Sync") for lp in ("uvloop", "asyncio")),
    *(_smisk(h, "uvloop", CORES) for h in ("Async", "Sync") if CORES > 2),
    *(
        Server(f"smisk-{kind}-{w}w", f"smisk-{kind}", loop="uvloop", workers=w)
        for kind in ("wsgi", "asgi")
        for w in sorted({1, 2, CORES})
    ),
)
C_ALL = ("c-libfcgi-*",)
PEERS = (f"c-libfcgi-{POOL}t", f"c-libfcgi-{WIDE}t", "flup", REFERENCE, "fcgisgi-wsgi", "uwsgi-*")
SMISK_MAIN = ("smisk-async-uvloop-1w", "smisk-sync-uvloop-1w", "smisk-async-uvloop-2w")
# Every smisk kind on one worker and on every core: the rows the high-concurrency scenarios need.
SMISK_CORE = (
    "smisk-*-uvloop-1w",
    f"smisk-*-uvloop-{CORES}w",
    "smisk-wsgi-1w",
    f"smisk-wsgi-{CORES}w",
    "smisk-asgi-1w",
)


@dataclass(frozen=True)
class Scenario:
    """One load: what is requested, how, from which servers."""

    name: str
    label: str
    app: str  # the smisk class suffix in apps.py, and the last path segment
    servers: tuple[str, ...]  # names or fnmatch patterns
    kind: str = "wrk"  # "wrk", "idle" (idle connections) or "slow" (slow reader)
    upstream: str = "ka"  # nginx's way to the server: "ka" (pool of POOL), "small", "wide", "close"
    connections: int = POOL
    script: str | None = None
    needs: str | None = None  # a module that must exist, else the rows are "pending"


SCENARIOS = (
    Scenario("hello-ka", "hello, keep-alive", "Hello", ("*",)),
    Scenario(
        "hello-ka-64",
        "hello, keep-alive, c=64",
        "Hello",
        (*C_ALL, *PEERS, *SMISK_CORE),
        connections=64,
    ),
    Scenario("hello-ka-256", "hello, keep-alive, c=256", "Hello", ("*",), connections=256),
    Scenario(
        "hello-ka-1024",
        "hello, keep-alive, c=1024",
        "Hello",
        (*PEERS, *SMISK_CORE),
        connections=1024,
    ),
    Scenario(
        "hello-pool",
        f"hello, pool of {SMALL_POOL} < c=256",
        "Hello",
        (*PEERS, *SMISK_CORE),
        upstream="small",
        connections=256,
    ),
    Scenario(
        "hello-wide",
        f"hello, pool of {WIDE} = c=256",
        "Hello",
        (*PEERS, *SMISK_CORE),
        upstream="wide",
        connections=256,
    ),
    Scenario(
        "hello-close",
        "hello, no keep-alive",
        "Hello",
        ("c-libfcgi-*", *PEERS, "smisk-*-uvloop-*", "smisk-async-asyncio-1w"),
        upstream="close",
    ),
    Scenario(
        "hello-close-256",
        "hello, no keep-alive, c=256",
        "Hello",
        (*PEERS, *SMISK_CORE),
        upstream="close",
        connections=256,
    ),
    Scenario("large", "64 KiB response", "Large", PEERS + SMISK_MAIN),
    Scenario(
        "large-256",
        "64 KiB response, c=256",
        "Large",
        (*PEERS, "smisk-*-uvloop-1w", f"smisk-async-uvloop-{CORES}w"),
        connections=256,
    ),
    Scenario("echo", "1 MiB POST echo", "Echo", PEERS + SMISK_MAIN, script="post_echo.lua"),
    Scenario(
        "echo-64",
        "1 MiB POST echo, c=64",
        "Echo",
        (*PEERS, "smisk-*-uvloop-1w"),
        script="post_echo.lua",
        connections=64,
    ),
    Scenario(
        "upload",
        "10 MiB multipart upload",
        "Upload",
        SMISK_MAIN,
        connections=8,
        script="upload.lua",
    ),
    Scenario(
        "session",
        "session read+write (file store)",
        "Session",
        SMISK_MAIN,
        script="session.lua",
        needs="smisk.sessions",
    ),
    Scenario(
        "idle",
        f"{IDLE_CONNECTIONS} idle keep-alive connections",
        "Hello",
        (REFERENCE, *SMISK_MAIN, "smisk-sync-uvloop-2w"),
        kind="idle",
    ),
    Scenario("slow", "100 MiB response, slow reader", "Huge", SMISK_MAIN, kind="slow"),
)


@dataclass
class Row:
    """One server in one scenario: medians over rounds, or a note why there are none."""

    server: str
    scenario: Scenario
    rps: float | None = None
    p50: float | None = None  # ms
    p99: float | None = None  # ms
    p999: float | None = None  # ms
    rss: float | None = None  # MiB, peak during the load (sum over the server's processes)
    growth: float | None = None  # MiB, the highest peak minus the idle RSS
    idle_rss: float | None = None  # MiB, after start and one check request
    cpu: float | None = None  # µs of server CPU (user + system, all processes) per request
    nginx_cpu: float | None = None  # µs of nginx's CPU per request meanwhile
    errors: int = 0  # socket errors and answers >= 400 other than 503, over all rounds
    shed: int = 0  # 503 answers (a configured limit shedding load), over all rounds
    note: str = ""


# -- setup ----------------------------------------------------------------------------------


def _run_quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=900)


def ensure_tools() -> None:
    """Install what is missing: Debian packages via apt-get, PyPI packages via pip."""
    apt = [
        pkg
        for tool, pkg in (("nginx", "nginx-light"), ("wrk", "wrk"), ("gcc", "gcc"))
        if not _which(tool)
    ]
    if not Path("/usr/include/fcgiapp.h").exists():
        apt.append("libfcgi-dev")
    if apt:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        print(f"installing {' '.join(apt)} ...", file=sys.stderr)
        _run_quiet([*sudo, "apt-get", "update", "-q"])
        _run_quiet([*sudo, "apt-get", "install", "-y", "-q", *apt])
    pip = [
        pkg for pkg in ("flup", "fcgisgi", "uvloop", "pyuwsgi") if not importlib.util.find_spec(pkg)
    ]
    if pip:
        print(f"installing {' '.join(pip)} ...", file=sys.stderr)
        _run_quiet([sys.executable, "-m", "pip", "install", "-q", *pip])


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def compile_responder(workdir: Path) -> Path:
    """Build the C libfcgi responder into the work directory."""
    binary = workdir / "hello"
    source = HERE / "peers" / "hello.c"
    cmd = ["gcc", "-O2", "-pthread", "-o", str(binary), str(source), "-lfcgi"]
    subprocess.run(cmd, check=True, timeout=120)
    return binary


def smisk_has_workers() -> bool:
    """Whether smisk-serve offers --workers yet."""
    cmd = [sys.executable, "-m", "smisk", "--help"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    return "--workers" in result.stdout


def raise_fd_limit() -> None:
    """Idle-connection runs need well over 1000 descriptors (inherited by the servers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- processes ------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rpartition(")")[2].split()[1])
                tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, ()))
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants."""
    ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    """Resident bytes summed over a process and its descendants (shared pages counted twice)."""
    page, total = os.sysconf("SC_PAGE_SIZE"), 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * page
    return total


class RssSampler:
    """Samples a process tree's RSS in a thread; ``peak`` is the highest value seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, tree_rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_PERIOD):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))


class Processes:
    """Every process this script starts; ``stop`` ends one by PID, ``stop_all`` the rest."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], cwd: Path | None = None) -> int:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 (owned by the child)
        env = {**os.environ, "PYTHONPATH": f"{REPO}:{HERE}"}
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.running[name] = proc
        return proc.pid

    def exited(self, name: str) -> bool:
        return self.running[name].poll() is not None

    def log_tail(self, name: str, lines: int = 5) -> str:
        text = (self.logdir / f"{name}.log").read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def stop(self, name: str) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        family = process_tree(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for pid in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def wait_connectable(address: str | tuple[str, int], alive: Callable[[], bool]) -> None:
    """Wait until something accepts connections at a unix path or (host, port)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("exited before listening")
        with socket.socket(family) as probe, contextlib.suppress(OSError):
            probe.connect(address)
            return
        time.sleep(0.05)  # a benchmark harness, not a test: polling start-up is fine here
    raise RuntimeError(f"not listening after {READY_TIMEOUT:.0f} s")


# -- servers and nginx ----------------------------------------------------------------------


@dataclass
class Bench:
    """Everything a run shares: work directory, processes, nginx, options."""

    workdir: Path
    procs: Processes
    responder: Path
    port: int
    options: argparse.Namespace
    has_workers: bool
    servers: list[Server] = field(default_factory=list)

    def socket_path(self, server: Server) -> str:
        return str(self.workdir / f"{server.name}.sock")


def server_argv(bench: Bench, server: Server, scenario: Scenario) -> list[str]:
    """The command line that starts a server on its socket."""
    path, python = bench.socket_path(server), sys.executable
    peers = str(HERE / "peers")
    if server.kind == "c":
        return [str(bench.responder), path, str(server.threads)]
    if server.kind == "flup":
        return [python, f"{peers}/wsgi_app.py", "flup", path]
    if server.kind == "fcgisgi-wsgi":
        return [python, f"{peers}/wsgi_app.py", "fcgisgi", path]
    if server.kind == "fcgisgi-asgi":
        return [python, f"{peers}/asgi_app.py", path]
    if server.kind == "uwsgi":
        return uwsgi_argv(path, server)
    if server.kind in ("smisk-wsgi", "smisk-asgi"):  # the peers' own apps, served by smisk
        module = "peers.wsgi_app:app" if server.kind == "smisk-wsgi" else "peers.asgi_app:app"
        interface = server.kind.removeprefix("smisk-")
        argv = [python, "-m", "smisk", module, "--interface", interface, "--bind", f"unix:{path}"]
        return [*argv, "--workers", str(server.workers)] if server.workers > 1 else argv
    argv = [
        python,
        "-m",
        "smisk",
        f"apps:{server.handler}{scenario.app}",
        "--bind",
        f"unix:{path}",
        "--loop",
        server.loop,
        "--log-level",
        "warning",
        *server.options,
    ]
    return [*argv, "--workers", str(server.workers)] if server.workers > 1 else argv


def uwsgi_argv(path: str, server: Server) -> list[str]:
    """uWSGI (the pyuwsgi wheel) on the WSGI peer app: a master, N processes of 32 threads, the
    same backlog as smisk, no request log (smisk logs no requests by default either)."""
    return [
        _which("uwsgi") or "uwsgi",
        "--fastcgi-socket",
        path,
        "--wsgi-file",
        str(HERE / "peers" / "wsgi_app.py"),
        "--callable",
        "app",
        "--master",
        "--processes",
        str(server.workers),
        "--threads",
        str(server.threads),
        "--listen",
        "1024",
        "--disable-logging",
        "--die-on-term",
    ]


def start_server(bench: Bench, server: Server, scenario: Scenario) -> int:
    """Start a server and wait until its socket accepts connections; returns its PID."""
    path = bench.socket_path(server)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    pid = bench.procs.start(server.name, server_argv(bench, server, scenario), cwd=HERE)
    try:
        wait_connectable(path, lambda: not bench.procs.exited(server.name))
    except RuntimeError as error:
        raise RuntimeError(f"{error}: {bench.procs.log_tail(server.name)}") from None
    return pid


NGINX_TEMPLATE = """
{user}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {work}/body; fastcgi_temp_path {work}/fastcgi;
  proxy_temp_path {work}/proxy; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  client_max_body_size 64m;
  client_body_buffer_size 16m;   # request bodies stay in memory: no temp-file noise
  fastcgi_buffer_size 16k;
  fastcgi_buffers 128 16k;       # a 1 MiB echo response fits in memory
  {upstreams}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    {locations}
  }}
}}
"""


def nginx_config(bench: Bench) -> str:
    """Per server: a keep-alive upstream of POOL connections (/NAME/ka/), one of SMALL_POOL
    (/NAME/small/), one of WIDE (/NAME/wide/) and a location without keep-alive (/NAME/close/)."""
    upstreams, locations = [], []
    for server in bench.servers:
        up, sock = server.name.replace("-", "_"), bench.socket_path(server)
        upstreams.append(f"upstream {up} {{ server unix:{sock}; keepalive {POOL}; }}")
        upstreams.append(f"upstream {up}_small {{ server unix:{sock}; keepalive {SMALL_POOL}; }}")
        upstreams.append(f"upstream {up}_wide {{ server unix:{sock}; keepalive {WIDE}; }}")
        params = "include /etc/nginx/fastcgi_params;"
        locations.append(
            f"location /{server.name}/ka/ {{ {params} fastcgi_pass {up}; fastcgi_keep_conn on; }}"
        )
        for pool in ("small", "wide"):
            locations.append(
                f"location /{server.name}/{pool}/ {{ {params} fastcgi_pass {up}_{pool}; "
                "fastcgi_keep_conn on; }"
            )
        locations.append(f"location /{server.name}/close/ {{ {params} fastcgi_pass unix:{sock}; }}")
    user = "user root;" if os.geteuid() == 0 else ""
    return NGINX_TEMPLATE.format(
        user=user,
        work=bench.workdir,
        port=bench.port,
        upstreams="\n  ".join(upstreams),
        locations="\n    ".join(locations),
    )


def start_nginx(bench: Bench) -> None:
    for sub in ("body", "fastcgi", "proxy", "uwsgi", "scgi"):
        (bench.workdir / sub).mkdir(exist_ok=True)
    conf = bench.workdir / "nginx.conf"
    conf.write_text(nginx_config(bench))
    nginx = _which("nginx") or "nginx"
    bench.procs.start("nginx", [nginx, "-p", str(bench.workdir), "-c", str(conf)])
    wait_connectable(("127.0.0.1", bench.port), lambda: not bench.procs.exited("nginx"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- loads ----------------------------------------------------------------------------------


@dataclass
class Sample:
    """One measured run of one server."""

    rps: float | None = None
    p50: float | None = None  # ms
    p99: float | None = None
    p999: float | None = None
    rss: int = 0
    errors: int = 0  # socket errors and answers >= 400 other than 503
    shed: int = 0  # 503 answers
    requests: int = 0
    cpu: float | None = None  # µs of server CPU per request
    nginx_cpu: float | None = None  # µs of nginx's CPU per request


STATUS_LINE = re.compile(
    r"^smisk-bench: shed=(\d+) failed=(\d+) p50=(\d+) p99=(\d+) p999=(\d+)$", re.M
)


def parse_wrk(output: str) -> Sample:
    """Requests/s, p50/p99/p99.9 in ms, 503s and errors (socket errors plus other answers
    >= 400) from wrk's report and the line ``lua/status.lua`` adds to it."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    requests = re.search(r"^\s*(\d+) requests in", output, re.M)
    status = STATUS_LINE.search(output)
    if status is None:
        raise RuntimeError(f"no status line in wrk's output: {output.strip()[-200:]}")
    shed, failed, p50, p99, p999 = (int(n) for n in status.groups())
    return Sample(
        float(rps[1]) if rps else None,
        p50 / 1000,
        p99 / 1000,
        p999 / 1000,
        errors=errors + failed,
        shed=shed,
        requests=int(requests[1]) if requests else 0,
    )


def wrk_script(bench: Bench, scenario: Scenario) -> Path:
    """The scenario's own wrk script (if any) followed by ``lua/status.lua``."""
    path = bench.workdir / f"{scenario.name}.lua"
    if not path.exists():
        parts = [HERE / "lua" / scenario.script] if scenario.script else []
        parts.append(HERE / "lua" / "status.lua")
        path.write_text("\n".join(part.read_text() for part in parts))
    return path


def url(bench: Bench, server: Server, scenario: Scenario) -> str:
    return f"http://127.0.0.1:{bench.port}/{server.name}/{scenario.upstream}/{scenario.app.lower()}"


def run_wrk(bench: Bench, server: Server, scenario: Scenario, pid: int, seconds: int) -> Sample:
    """One wrk run against a server through nginx, sampling the server's RSS meanwhile."""
    argv = [
        "wrk",
        f"-t{WRK_THREADS if scenario.connections > POOL else 1}",
        f"-c{scenario.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(wrk_script(bench, scenario)),
    ]
    nginx = bench.procs.running["nginx"].pid
    cpu_before, nginx_before = tree_cpu(pid), tree_cpu(nginx)
    with RssSampler(pid) as sampler:
        done = subprocess.run(
            [*argv, url(bench, server, scenario)],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    cpu_used, nginx_used = tree_cpu(pid) - cpu_before, tree_cpu(nginx) - nginx_before
    sample = parse_wrk(done.stdout)
    if sample.rps is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    sample.rss = sampler.peak
    if sample.requests:
        sample.cpu = cpu_used / sample.requests * 1e6
        sample.nginx_cpu = nginx_used / sample.requests * 1e6
    return sample


# -- a minimal FastCGI client (idle connections and the slow reader talk to the socket) ------


def _record(kind: int, content: bytes) -> bytes:
    return struct.pack("!BBHHBx", 1, kind, 1, len(content), 0) + content


def _pair_length(n: int) -> bytes:
    return bytes((n,)) if n < 128 else struct.pack("!I", n | 0x80000000)


def fastcgi_request(path: str, keep_conn: bool) -> bytes:
    """BEGIN_REQUEST (responder), the params of a GET and an empty body."""
    params = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": path,
        "REQUEST_URI": path,
        "DOCUMENT_URI": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "GATEWAY_INTERFACE": "CGI/1.1",
    }
    encoded = b"".join(
        _pair_length(len(k)) + _pair_length(len(v)) + k.encode() + v.encode()
        for k, v in params.items()
    )
    begin = struct.pack("!HB5x", 1, 1 if keep_conn else 0)
    return _record(1, begin) + _record(4, encoded) + _record(4, b"") + _record(5, b"")


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("FastCGI server closed the connection mid-record")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_records(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """Yield (type, content) until END_REQUEST (included)."""
    while True:
        _, kind, _, length, padding = struct.unpack("!BBHHBx", _read_exact(sock, 8))
        content = _read_exact(sock, length + padding)[:length]
        yield kind, content
        if kind == 3:
            return


def fastcgi_get(path: str, socket_path: str, keep_conn: bool) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    sock.connect(socket_path)
    sock.sendall(fastcgi_request(path, keep_conn))
    return sock


def measure_idle(bench: Bench, server: Server, scenario: Scenario, pid: int) -> Sample:
    """Open connections straight to the socket, one keep-conn request each, then keep them idle."""
    path, sockets = f"/{server.name}/ka/{scenario.app.lower()}", []
    try:
        for _ in range(IDLE_CONNECTIONS):
            sock = fastcgi_get(path, bench.socket_path(server), keep_conn=True)
            sockets.append(sock)
            for _ in read_records(sock):
                pass
        time.sleep(SETTLE)  # let finished requests' objects go before measuring
        return Sample(rss=tree_rss(pid))
    finally:
        for sock in sockets:
            sock.close()


def measure_slow(bench: Bench, server: Server, scenario: Scenario, pid: int) -> Sample:
    """Ask for 100 MiB, stop reading after the first record for a while, then read it all."""
    path = f"/{server.name}/close/{scenario.app.lower()}"
    with RssSampler(pid) as sampler:
        sock = fastcgi_get(path, bench.socket_path(server), keep_conn=False)
        with sock:
            records, received = read_records(sock), 0
            received += len(next(records)[1])
            time.sleep(SLOW_STALL)
            received += sum(len(content) for kind, content in records if kind == 6)
    if received < 100 * MIB:
        raise RuntimeError(f"slow reader got only {received} bytes")
    return Sample(rss=sampler.peak)


# -- correctness check before measuring -----------------------------------------------------

UPLOAD_CHECK = (
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\nabc\r\n--b--\r\n'
)
CHECKS: dict[str, tuple[str, bytes | None, dict[str, str], Callable[[bytes], bool]]] = {
    "Hello": ("GET", None, {}, lambda body: body == b"Hello, World!"),
    "Large": ("GET", None, {}, lambda body: len(body) == 65536),
    "Echo": ("POST", b"e" * 5000, {}, lambda body: body == b"e" * 5000),
    "Upload": (
        "POST",
        UPLOAD_CHECK,
        {"Content-Type": "multipart/form-data; boundary=b"},
        lambda body: body.startswith(b"1 file(s), 3 bytes"),
    ),
    "Session": ("GET", None, {}, lambda body: body.startswith(b"visit 1")),
}


def check_answer(bench: Bench, server: Server, scenario: Scenario) -> None:
    """One request through nginx; raises unless the answer is right."""
    if scenario.app not in CHECKS:
        return
    method, body, headers, valid = CHECKS[scenario.app]
    conn = http.client.HTTPConnection("127.0.0.1", bench.port, timeout=30)
    try:
        conn.request(method, url(bench, server, scenario), body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
    finally:
        conn.close()
    if answer.status != 200 or not valid(data):
        raise RuntimeError(f"wrong answer: {answer.status} {data[:80]!r}")


# -- one scenario ---------------------------------------------------------------------------


def pending_reason(bench: Bench, server: Server, scenario: Scenario) -> str | None:
    if server.workers > 1 and not bench.has_workers:
        return "n/a (pending: smisk-serve has no --workers yet)"
    if scenario.needs and server.is_smisk and not importlib.util.find_spec(scenario.needs):
        return f"n/a (pending: {scenario.needs} does not exist yet)"
    return None


def measure(bench: Bench, server: Server, scenario: Scenario, pid: int) -> Sample:
    if scenario.kind == "idle":
        return measure_idle(bench, server, scenario, pid)
    if scenario.kind == "slow":
        return measure_slow(bench, server, scenario, pid)
    return run_wrk(bench, server, scenario, pid, bench.options.duration)


def wait_workers(pid: int, workers: int) -> None:
    """Wait until a multi-worker server has forked all its workers."""
    deadline = time.monotonic() + READY_TIMEOUT
    while workers > 1 and len(process_tree(pid)) <= workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {workers} workers after {READY_TIMEOUT:.0f} s")
        time.sleep(0.05)


def prepare(bench: Bench, server: Server, scenario: Scenario) -> tuple[int, int]:
    """Start, check and warm up a server; returns (pid, its idle RSS after the check)."""
    pid = start_server(bench, server, scenario)
    wait_workers(pid, server.workers)
    check_answer(bench, server, scenario)
    time.sleep(SETTLE)
    idle = tree_rss(pid)
    if scenario.kind == "wrk":
        run_wrk(bench, server, scenario, pid, WARMUP_SECONDS)
    return pid, idle


def summarize(row: Row, samples: list[Sample], idle: int) -> None:
    """Medians over rounds; RSS growth is the highest peak of all rounds over the idle RSS."""

    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    row.rps = median([s.rps for s in samples])
    row.p50, row.p99 = median([s.p50 for s in samples]), median([s.p99 for s in samples])
    row.p999 = median([s.p999 for s in samples])
    row.rss = median([s.rss / MIB for s in samples])
    row.cpu = median([s.cpu for s in samples])
    row.nginx_cpu = median([s.nginx_cpu for s in samples])
    row.idle_rss = idle / MIB
    row.growth = max(s.rss for s in samples) / MIB - row.idle_rss
    row.errors = sum(s.errors for s in samples)
    row.shed = sum(s.shed for s in samples)


def run_scenario(bench: Bench, scenario: Scenario) -> list[Row]:
    """Start the scenario's servers, interleave them over the rounds, stop them."""
    chosen = [s for s in bench.servers if any(fnmatch.fnmatch(s.name, p) for p in scenario.servers)]
    rows = {s.name: Row(s.name, scenario) for s in chosen}
    ready: dict[str, tuple[Server, int, int]] = {}
    try:
        for server in chosen:
            if (reason := pending_reason(bench, server, scenario)) is not None:
                rows[server.name].note = reason
                continue
            try:
                pid, idle = prepare(bench, server, scenario)
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                rows[server.name].note = f"failed: {error}"[:160]
                bench.procs.stop(server.name)
                continue
            ready[server.name] = (server, pid, idle)
        samples = interleave(bench, scenario, ready, rows)
        for name, (_, _, idle) in ready.items():
            if samples[name] and not rows[name].note:
                summarize(rows[name], samples[name], idle)
    finally:
        for name in ready:
            bench.procs.stop(name)
    return list(rows.values())


def interleave(
    bench: Bench,
    scenario: Scenario,
    ready: dict[str, tuple[Server, int, int]],
    rows: dict[str, Row],
) -> dict[str, list[Sample]]:
    """Each round measures every server once, starting one further along each time."""
    samples: dict[str, list[Sample]] = {name: [] for name in ready}
    order = list(ready)
    for round_no in range(bench.options.rounds):
        shift = round_no % len(order) if order else 0
        for name in order[shift:] + order[:shift]:
            server, pid, _ = ready[name]
            if rows[name].note:
                continue
            print(f"  {scenario.name} round {round_no + 1}: {name}", file=sys.stderr)
            try:
                samples[name].append(measure(bench, server, scenario, pid))
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                rows[name].note = f"failed: {error}"[:160]
    return samples


# -- report ---------------------------------------------------------------------------------

COLUMNS = (
    "server",
    "scenario",
    "req/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "RSS MiB",
    "RSS / idle",
    "CPU µs/req",
    "errors",
    "503s",
    "req/s ratio",
    "p99 ratio",
    "RSS ratio",
    "note",
)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "—"
    return f"{value / reference:.2f}x"


def row_cells(row: Row, reference: Row | None) -> list[str]:
    """One table line; the RSS ratio compares peaks with the reference, "RSS / idle" the peak
    under load with the same server's RSS at rest."""
    if row.note:
        return [row.server, row.scenario.label, *["—"] * (len(COLUMNS) - 3), row.note]
    ref = reference or Row(REFERENCE, row.scenario)
    latency = [_fmt(row.p50, 2), _fmt(row.p99, 2), _fmt(row.p999, 2)]
    return [
        row.server,
        row.scenario.label,
        _fmt(row.rps, 0),
        *latency,
        _fmt(row.rss),
        _ratio(row.rss, row.idle_rss),
        _fmt(row.cpu, 0),
        str(row.errors),
        str(row.shed),
        _ratio(row.rps, ref.rps),
        _ratio(row.p99, ref.p99),
        _ratio(row.rss, ref.rss),
        "",
    ]


def table_cells(rows: list[Row]) -> list[list[str]]:
    references = {r.scenario.name: r for r in rows if r.server == REFERENCE and not r.note}
    return [row_cells(r, references.get(r.scenario.name)) for r in rows]


def text_table(header: tuple[str, ...], cells: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [list(header), *cells]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(header), *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: tuple[str, ...], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in cells]
    return "\n".join(lines)


# -- targets (from the issue) ----------------------------------------------------------------


def _find(rows: list[Row], scenario: str, pattern: str) -> list[Row]:
    return [
        r
        for r in rows
        if r.scenario.name == scenario and fnmatch.fnmatch(r.server, pattern) and not r.note
    ]


def _best(rows: list[Row], scenario: str, pattern: str) -> Row | None:
    found = [r for r in _find(rows, scenario, pattern) if r.rps is not None]
    return max(found, key=lambda r: r.rps or 0.0) if found else None


def _speed_target(rows: list[Row], scenario: str, mine: str, peer: str, goal: float) -> list[str]:
    """The best smisk row matching ``mine`` against the best peer row matching ``peer``."""
    ours, theirs = _best(rows, scenario, mine), _best(rows, scenario, peer)
    what = f"{scenario}: best {mine} vs best {peer}"
    if ours is None or theirs is None or not ours.rps or not theirs.rps:
        return [what, f">= {goal}x", "—", "not measured"]
    ratio = ours.rps / theirs.rps
    detail = f"{ratio:.2f}x ({ours.server} {ours.rps:,.0f} / {theirs.server} {theirs.rps:,.0f})"
    return [what, f">= {goal}x", detail, "met" if ratio >= goal else "NOT met"]


def _memory_target(rows: list[Row], scenario: str, limit: float, idle: bool = False) -> list[str]:
    """The worst smisk row: RSS growth (or, with ``idle``, one worker's RSS at start)."""
    found = _find(rows, scenario, "smisk-*-1w" if idle else "smisk-*")
    values = [(r.idle_rss if idle else r.growth, r.server) for r in found]
    known = [(value, server) for value, server in values if value is not None]
    what = f"{scenario}: {'RSS of one idle worker' if idle else 'RSS growth'}, worst smisk row"
    if not known:
        return [what, f"<= {limit:.0f} MiB", "—", "not measured"]
    worst, server = max(known)
    status = "met" if worst <= limit else "NOT met"
    return [what, f"<= {limit:.0f} MiB", f"{worst:.1f} MiB ({server})", status]


def _versus_c(rows: list[Row], scenario: str, mine: str, speed: float, tail: float) -> list[str]:
    """The best smisk row matching ``mine`` against the C responders: req/s at least ``speed``
    times the fastest one's, p99 at most ``tail`` times the lowest C p99 (0: not judged; the
    fastest C responder by req/s can be one that stalls clients on its thread count, with a
    p99 of seconds) and no errors."""
    ours, theirs = _best(rows, scenario, mine), _best(rows, scenario, "c-libfcgi-*")
    calm = _lowest_p99(rows, scenario, "c-libfcgi-*")
    goal = f">= {speed}x req/s" + (f", p99 <= {tail}x the lowest C p99" if tail else "")
    what = f"{scenario}: best {mine} vs the C responders"
    if ours is None or theirs is None or calm is None or not ours.rps or not theirs.rps:
        return [what, goal + ", 0 errors", "—", "not measured"]
    ratio = ours.rps / theirs.rps
    p99 = (ours.p99 or 0.0) / (calm.p99 or 1.0)
    detail = (
        f"{ratio:.2f}x, p99 {p99:.2f}x, {ours.errors} errors "
        f"({ours.server} {ours.rps:,.0f} req/s p99 {ours.p99:.1f} ms; "
        f"{theirs.server} {theirs.rps:,.0f} req/s; {calm.server} p99 {calm.p99:.1f} ms)"
    )
    met = ratio >= speed and (not tail or p99 <= tail) and ours.errors == 0
    return [what, goal + ", 0 errors", detail, "met" if met else "NOT met"]


def _lowest_p99(rows: list[Row], scenario: str, pattern: str) -> Row | None:
    found = [r for r in _find(rows, scenario, pattern) if r.p99]
    return min(found, key=lambda r: r.p99 or 0.0) if found else None


def _no_errors(rows: list[Row]) -> list[str]:
    """Every measured smisk row: no socket error and no answer >= 400 but 503."""
    failing = [
        f"{r.server} {r.scenario.name}: {r.errors}"
        for r in rows
        if r.errors and r.server.startswith("smisk-")
    ]
    measured = "none" if not failing else "; ".join(failing[:8]) + (" ..." if failing[8:] else "")
    return [
        "every smisk row: errors (503s counted apart)",
        "0",
        measured,
        "NOT met" if failing else "met",
    ]


def _load_memory(rows: list[Row], limit: float) -> list[str]:
    """The smisk row whose RSS under load is the largest multiple of its RSS at rest. Rows
    whose requests carry bodies (echo, upload) are left out: there the bodies in flight are
    the memory (64 clients echoing 1 MiB hold 128 MiB of request and response)."""
    found = [
        (r.rss / r.idle_rss, r)
        for r in rows
        if r.server.startswith("smisk-")
        and r.rss
        and r.idle_rss
        and r.scenario.kind == "wrk"
        and r.scenario.app not in BODY_APPS
    ]
    what = "every smisk row without request bodies: peak RSS / idle RSS"
    if not found:
        return [what, f"<= {limit}x", "—", "not measured"]
    worst, row = max(found, key=lambda pair: pair[0])
    detail = (
        f"{worst:.2f}x ({row.server} {row.scenario.name}: {row.rss:.1f} / {row.idle_rss:.1f} MiB)"
    )
    return [what, f"<= {limit}x", detail, "met" if worst <= limit else "NOT met"]


def _scaling(rows: list[Row], scenario: str, base: str) -> list[list[str]]:
    """``base``-Nw against N times ``base``-1w, for each N on the curve above one."""
    one = _best(rows, scenario, f"{base}-1w")
    lines = []
    for workers in SCALE[1:]:
        many = _best(rows, scenario, f"{base}-{workers}w")
        what = f"{scenario}: {base} {workers} workers vs {workers} x 1 worker"
        if one is None or many is None or not one.rps or not many.rps:
            lines.append([what, ">= 0.9x", "—", "not measured"])
            continue
        ratio = many.rps / (workers * one.rps)
        detail = f"{ratio:.2f}x ({many.rps:,.0f} / {workers} x {one.rps:,.0f})"
        lines.append([what, ">= 0.9x", detail, "met" if ratio >= 0.9 else "NOT met"])
    return lines


TARGET_COLUMNS = ("target", "goal", "measured", "status")


def targets(rows: list[Row]) -> list[list[str]]:
    c_pool = f"c-libfcgi-{POOL}t"
    return [
        _speed_target(rows, "hello-ka", "smisk-async-*", REFERENCE, 1.3),
        _speed_target(rows, "hello-ka", "smisk-async-*", c_pool, 0.75),
        _speed_target(rows, "hello-ka", "smisk-sync-*", "fcgisgi-wsgi", 1.5),
        _speed_target(rows, "hello-ka", "smisk-sync-*", "flup", 2.0),
        _speed_target(rows, "hello-ka", "smisk-wsgi-*", "flup", 1.5),
        _speed_target(rows, "hello-ka", "smisk-asgi-*", REFERENCE, 1.2),
        _speed_target(rows, "hello-close", "smisk-*", "c-libfcgi-1t", 0.8),
        _speed_target(rows, "hello-close", "smisk-*", c_pool, 0.8),
        _speed_target(rows, "large", "smisk-*", REFERENCE, 1.2),
        _speed_target(rows, "echo", "smisk-*", REFERENCE, 1.2),
        _memory_target(rows, "upload", 16),
        _memory_target(rows, "slow", 16),
        _memory_target(rows, "idle", 30, idle=True),
        _memory_target(rows, "idle", 30),
        *(
            line
            for scenario in ("hello-ka-64", "hello-ka-256")
            for line in (
                _versus_c(rows, scenario, "smisk-async-*", 1.0, 1.5),
                _versus_c(rows, scenario, "smisk-sync-*", 0.6, 0.0),
                _speed_target(rows, scenario, "smisk-wsgi-1w", "uwsgi-1p", 1.0),
                _speed_target(rows, scenario, f"smisk-wsgi-{CORES}w", f"uwsgi-{CORES}p", 0.9),
            )
        ),
        *_scaling(rows, "hello-ka-256", "smisk-async-uvloop"),
        *_scaling(rows, "hello-ka-256", "smisk-sync-uvloop"),
        _no_errors(rows),
        _load_memory(rows, 1.5),
    ]


SCALING_COLUMNS = (
    "server",
    "workers",
    "req/s",
    "x one worker",
    "CPU µs/req",
    "nginx CPU µs/req",
    "p99 ms",
)


def scaling_table(rows: list[Row], scenario: str = "hello-ka-256") -> list[list[str]]:
    """The workers curve (1, 2, all cores) of every smisk kind measured in ``scenario``."""
    lines = []
    for base in ("smisk-async-uvloop", "smisk-sync-uvloop", "smisk-wsgi"):
        one = _best(rows, scenario, f"{base}-1w")
        for workers in SCALE:
            row = _best(rows, scenario, f"{base}-{workers}w")
            if row is None:
                continue
            times = _ratio(row.rps, one.rps if one else None)
            cpu = [_fmt(row.cpu, 0), _fmt(row.nginx_cpu, 0)]
            cells = [_fmt(row.rps, 0), times, *cpu, _fmt(row.p99, 2)]
            lines.append([base, str(workers), *cells])
    return lines


# -- machine description and output ---------------------------------------------------------


def _version(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=REPO)
        return (done.stdout + done.stderr).strip().splitlines()[0]
    return "unknown"


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine(load_at_start: str) -> list[str]:
    cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    return [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"load average (1, 5, 15 min) at start: {load_at_start}; at the end: {_load()} "
        "(other work on the cores lowers every figure; compare ratios)",
        f"machine: {os.cpu_count()} CPUs ({cpu[1] if cpu else 'unknown CPU'}), "
        f"kernel {platform.release()}",
        f"nginx: {_version([_which('nginx') or 'nginx', '-v'])}; wrk: {_version(['wrk', '-v'])}",
        f"Python {platform.python_version()}; {_version([sys.executable, '-m', 'smisk', '--version'])}",
    ]


def report(rows: list[Row], options: argparse.Namespace) -> None:
    cells, goals = table_cells(rows), targets(rows)
    about = [
        *machine(options.load_at_start),
        f"command: python benchmarks/run.py {' '.join(options.argv)}".rstrip(),
    ]
    print("\n".join(about) + "\n")
    print(text_table(COLUMNS, cells) + "\n")
    print(text_table(TARGET_COLUMNS, goals) + "\n")
    scaling = scaling_table(rows)
    print(text_table(SCALING_COLUMNS, scaling))
    if options.markdown:
        text = "\n".join(f"- {line}" for line in about)
        text += "\n\n" + markdown_table(COLUMNS, cells) + "\n\n### Targets\n\n"
        text += markdown_table(TARGET_COLUMNS, goals) + "\n\n### Workers (hello, c=256)\n\n"
        text += markdown_table(SCALING_COLUMNS, scaling) + "\n"
        Path(options.markdown).write_text(text)


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (median)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--servers", default="", help="comma-separated server names or globs")
    parser.add_argument("--markdown", help="also write the tables as Markdown to this file")
    options = parser.parse_args(argv)
    options.argv = argv
    options.load_at_start = _load()
    return options


def selected(options: argparse.Namespace) -> tuple[list[Server], list[Scenario]]:
    patterns = [p for p in options.servers.split(",") if p] or ["*"]
    servers = [s for s in SERVERS if any(fnmatch.fnmatch(s.name, p) for p in patterns)]
    names = [n for n in options.only.split(",") if n]
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return servers, [s for s in SCENARIOS if not names or s.name in names]


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    servers, scenarios = selected(options)
    ensure_tools()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="smisk-bench-") as work:
        workdir = Path(work)
        procs = Processes(workdir)
        try:
            bench = Bench(
                workdir,
                procs,
                compile_responder(workdir),
                free_port(),
                options,
                smisk_has_workers(),
                servers,
            )
            start_nginx(bench)
            rows = [row for scenario in scenarios for row in run_scenario(bench, scenario)]
        finally:
            procs.stop_all()
    report(rows, options)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
