"""The Prefect API server of runs without PREFECT_API_URL: shared by the user's sweeps, or private.

By default a sweep uses (or starts) the server this user's sweeps share on the same database
(server/shared.py: discovery, lease, idle exit); FEDSWEEP_PREFECT_SERVER=private, or a
shared server that cannot be used (another Prefect version, no safe runtime folder), gives the
private server described here.

Prefect's own ephemeral server prints shutdown tracebacks into the terminal and survives a SIGKILL of
the process that started it. This one is the same uvicorn app, started early (so that its ~6 s of
start-up overlap data preparation), logging to a file in the sweep folder, and tied to our life: the
kernel kills it when we die, however we die (PR_SET_PDEATHSIG). It runs in a session of its own, so
the terminal's Ctrl-C (sent to the whole foreground process group) does not reach it, and it ignores
SIGTERM (a batch scheduler's stop reaches every process of a job): the sweep stops it itself, last,
once everything has been sent to it (fedsweep/interrupt.py, server/process.py). Its database is
Prefect's: sqlite in PREFECT_HOME, or the PostgreSQL server that Prefect's own
PREFECT_SERVER_DATABASE_CONNECTION_URL names (checked before anything starts: `check_database`).
"""

import atexit
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

import psutil

import server.shared as shared_server
from fedsweep.config.environment import check_prefect_database
from fedsweep.lifeline import die_with_parent

# Server services a sweep has no use for; they only compete for the sqlite database. The event
# persister stores every state-change event (three per task run) in the `events` tables, which grow
# by gigabytes and hold sqlite's write lock so long that creating a cell's flow run waits seconds
# (quickstart: 44-46 s with it, 36 s without); task runs and flow runs are still recorded by the
# task-run recorder and the API, so the UI shows sweeps, cells and tasks, without an event feed.
_QUIET_SERVICES = (
    "SCHEDULER",
    "LATE_RUNS",
    "FOREMAN",
    "CANCELLATION_CLEANUP",
    "PAUSE_EXPIRATIONS",
    "TRIGGERS",
    "EVENT_LOGGER",
    "REPOSSESSOR",
    "EVENT_PERSISTER",
)


# Prefect's task-run recorder writes every task-run event (three per task run) in a transaction of
# its own by default: ~30 ms of the server's CPU per task run, and three chances per task run to hold
# sqlite's write lock while an API call (a cell's flow run, a state, an artifact) waits for it. In
# batches of up to 500 events, flushed every second, a task run costs ~5 ms and the UI lags by at most
# a second (benchmarks/task_overhead.py). A user's own values for these settings are kept.
_RECORDER = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def _die_with_parent() -> None:
    die_with_parent(signal.SIGKILL)  # it ignores SIGTERM (server/process.py)
    _lower_priority()


def _lower_priority() -> None:
    # The server records task-run events as they come; on a small machine it would otherwise take
    # cores from training. At a lower priority it catches up in the gaps (the UI lags by seconds).
    os.nice(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_server: "LocalServer | SharedServer | None" = None
# Prefect's own settings for its server's database, in Prefect's order of precedence; the private
# server inherits them (README: "Prefect on PostgreSQL").
DATABASE_VARIABLES = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


def check_database() -> None:
    """ConfigError unless the database our server would be told to use can be used (nothing to check
    when PREFECT_API_URL names a server of the user's own, or no database is named), or when
    FEDSWEEP_PREFECT_SERVER / FEDSWEEP_SERVER_IDLE_S are wrong."""
    if os.environ.get("PREFECT_API_URL"):
        return
    shared_server.check_settings()
    for name in DATABASE_VARIABLES:
        if os.environ.get(name):
            check_prefect_database(os.environ[name], key=name)
            return


def prefect_server(log_dir: Path) -> "LocalServer | SharedServer | None":
    """This process's Prefect server, found or started on the first call: the shared one, else a
    private one (its log in `log_dir`); None when PREFECT_API_URL names a server of the user's own."""
    global _server  # noqa: PLW0603 - one server per process, used by every job of a -m sweep
    if _server is None:
        if os.environ.get("PREFECT_API_URL"):
            return None
        _server = _shared() or LocalServer(log_path=log_dir / "prefect-server.log")
        os.environ["PREFECT_API_URL"] = _server.url
    return _server


def _shared() -> "SharedServer | None":
    folder = shared_server.runtime_dir() if shared_server.mode() == "shared" else None
    if folder is None:
        return None
    files = shared_server.ServerFiles.of(folder)
    found = shared_server.find_or_start(files)
    if found is None:
        return None
    starting = None
    if found.url is None:  # none running: start the one the others will use
        starting = LocalServer(
            log_path=files.log, shared=(shared_server.idle_seconds(), files.lease, files.state)
        )
    return SharedServer(found=found, starting=starting, state=files.state)


def _start_lock(timeout_s: float = 120.0) -> IO[bytes] | None:
    """An exclusive lock on PREFECT_HOME while one of our servers starts: a server creates or
    migrates the shared sqlite database at start-up, and two doing it at once (two sweeps started
    together) fail with "index ... already exists". Bounded; the kernel drops it if we die."""
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
        handle = (home / ".fedsweep-server-start.lock").open("ab")
    except OSError:
        return None
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                return None
            time.sleep(0.1)


def _wait_cpu_idle(pid: int, timeout_s: float) -> None:
    """Until the process uses under 20 ms of CPU a second (at most `timeout_s`)."""
    try:
        server = psutil.Process(pid)
        busy = lambda: sum(server.cpu_times()[:2])  # noqa: E731
        deadline, last = time.monotonic() + timeout_s, busy()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = busy()
            if now - last < 0.005:
                return
            last = now
    except psutil.Error:
        return


class LocalServer:
    """A Prefect API server in a child process, for the lifetime of this process."""

    def __init__(self, *, log_path: Path, shared: tuple[float, Path, Path] | None = None) -> None:
        """`shared`: (idle seconds, lease file, state file) of a server that outlives this process."""
        self._starting = _start_lock()  # released once the server answers (wait_ready)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        env.update({f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in _QUIET_SERVICES})
        env.update({name: value for name, value in _RECORDER.items() if name not in os.environ})
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        command = [sys.executable, str(Path(__file__).with_name("process.py")), str(self.port)]
        if shared:
            command += [f"{shared[0]:g}", str(shared[1]), str(shared[2])]
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_lower_priority if shared else _die_with_parent,
            start_new_session=True,
            cwd=log_path.parent if shared else None,  # a shared server must not pin a sweep's folder
        )
        self._stopping = threading.Lock()
        if not shared:
            atexit.register(self.stop)

    def wait_idle(self, timeout_s: float = 15.0) -> None:
        """Wait (bounded) until the server is idle (under 20 ms of CPU a second): it records task
        runs from a queue of events, and stopping it while that queue is full would leave the last
        task runs missing or shown Running in the UI."""
        _wait_cpu_idle(self.process.pid, timeout_s)

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until the API answers; a bounded wait, with the log's tail in the error."""
        try:
            self._wait_ready(timeout_s)
        finally:
            if self._starting is not None:
                self._starting.close()  # the database is migrated: a neighbour's server may start
                self._starting = None

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        tail = Path(self._log.name).read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the local Prefect server did not start (log: {self._log.name}):\n{tail}")

    def stop(self, idle_wait_s: float = 15.0) -> None:
        """Stop the server once it is idle (at most `idle_wait_s`); a second caller waits for the first."""
        with self._stopping:
            self._stop(idle_wait_s)

    def _stop(self, idle_wait_s: float) -> None:
        if self.process.poll() is None:
            self.wait_idle(idle_wait_s)
            self.process.send_signal(signal.SIGUSR1)  # its graceful stop (server/process.py)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class SharedServer:
    """This process's use of the shared server (server/shared.py): found running, or started
    here for every sweep; `stop` only ends this process's lease, the server stops when idle."""

    def __init__(self, *, found: shared_server.Found, starting: LocalServer | None, state: Path) -> None:
        self._found, self._starting, self._state = found, starting, state
        self.url = found.url or starting.url
        self.pid = found.pid or starting.process.pid
        self._stopping = threading.Lock()
        atexit.register(self.stop)

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until it answers; a server started here first writes its state file, then the
        sweeps waiting to start one of their own find it instead."""
        if self._starting is None:
            return
        try:
            self._starting.wait_ready(timeout_s)
            deadline = time.monotonic() + 10
            while (shared_server.read_state(self._state) or {}).get(
                "pid"
            ) != self.pid and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            if self._found.start_lock is not None:
                self._found.start_lock.close()
                self._found.start_lock = None

    def wait_idle(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until the server has recorded what this sweep sent (see LocalServer.wait_idle)."""
        _wait_cpu_idle(self.pid, timeout_s)

    def stop(self, idle_wait_s: float = 5.0) -> None:
        """End this process's lease; the server stays. It outlives the last lease by its idle
        timeout, recording what was sent meanwhile; only a timeout shorter than `idle_wait_s` makes
        this wait (bounded) for it to be idle first. Other sweeps keep a shared server busy, so
        waiting for idle would only hold up this sweep's exit."""
        with self._stopping:
            if not self._found.lease.closed:
                idle_s = (shared_server.read_state(self._state) or {}).get("idle_s")
                wait_s = min(idle_wait_s, 5.0)
                if not isinstance(idle_s, int | float) or idle_s < wait_s:
                    self.wait_idle(wait_s)
                self._found.lease.close()
