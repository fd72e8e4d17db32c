"""One Prefect server per user and database, shared by that user's sweeps and gone when idle.

Booting a Prefect server costs seconds of every command (server/private.py). Without PREFECT_API_URL
a sweep therefore looks for a server that an earlier or concurrent sweep started, and starts one
for the others when there is none:

- **Where:** a per-user runtime folder (FEDSWEEP_RUNTIME_DIR, else $XDG_RUNTIME_DIR/fedsweep, else
  <tmp>/fedsweep-<uid>), mode 0700 and owned by the user, or no sharing at all. One set of files per
  *key*, the hash of the environment that decides the server's database (PREFECT_HOME, the profile,
  PREFECT_SERVER_* and the database URLs): a sweep only ever meets a server on its own database.
- **State file** `prefect-server-<key>.json` (pid, port, url, Prefect version, idle timeout), written
  by the server itself once its API answers (server/process.py). A file whose pid is dead or
  is not our server process is stale: it is replaced. A live server of another Prefect version is
  left alone and this sweep uses a private server, as before.
- **Lease** `prefect-server-<key>.lease`: each sweep holds a shared flock on it while it runs (the
  kernel drops it on any exit, kill -9 included); the server exits after FEDSWEEP_SERVER_IDLE_S
  seconds (default 600) without a holder. The lease is taken before the health check, so a server
  that answered is not going to leave during the sweep.
- **Start lock** `prefect-server-<key>.start`: whoever finds no usable server starts one and holds
  the lock until it answers; a concurrent sweep waits for it, then uses the same server.
- The server is detached (its own session, not tied to the sweep that started it), ignores SIGINT
  and SIGTERM like the private one: one sweep's Ctrl-C or a batch scheduler's SIGTERM to that
  sweep's processes does not stop it for the others. SIGUSR1 stops it by hand.

FEDSWEEP_PREFECT_SERVER=private forces a private server per command (the default under SLURM, where
the job's end would kill a server other jobs use); `shared` is the default elsewhere.
"""

import fcntl
import hashlib
import json
import os
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from fedsweep.config import ConfigError

MODE_VARIABLE, IDLE_VARIABLE = "FEDSWEEP_PREFECT_SERVER", "FEDSWEEP_SERVER_IDLE_S"
RUNTIME_VARIABLE = "FEDSWEEP_RUNTIME_DIR"
MODES = ("shared", "private")
DEFAULT_IDLE_S = 600.0
START_WAIT_S = 120.0
# The environment that decides which database a server uses: servers are shared only within one.
_KEY_VARIABLES = ("PREFECT_HOME", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH")


def mode() -> str:
    """`shared` or `private` (checked by `check_settings`)."""
    return os.environ.get(MODE_VARIABLE) or ("private" if os.environ.get("SLURM_JOB_ID") else "shared")


def idle_seconds() -> float:
    return float(os.environ.get(IDLE_VARIABLE) or DEFAULT_IDLE_S)


def check_settings() -> None:
    """ConfigError naming the variable when FEDSWEEP_PREFECT_SERVER or FEDSWEEP_SERVER_IDLE_S is wrong."""
    if mode() not in MODES:
        raise ConfigError(f"{MODE_VARIABLE}={mode()}: expected one of {', '.join(MODES)}", key=MODE_VARIABLE)
    try:
        ok = idle_seconds() > 0
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"{IDLE_VARIABLE}={os.environ.get(IDLE_VARIABLE)}: expected seconds > 0", key=IDLE_VARIABLE
        )


def runtime_dir() -> Path | None:
    """The per-user runtime folder, created 0700; None when it is not safely ours."""
    explicit, xdg = os.environ.get(RUNTIME_VARIABLE), os.environ.get("XDG_RUNTIME_DIR")
    folder = (
        Path(explicit)
        if explicit
        else Path(xdg) / "fedsweep"
        if xdg
        else Path(tempfile.gettempdir()) / f"fedsweep-{os.getuid()}"
    )
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    safe = info.st_uid == os.getuid() and not info.st_mode & 0o022 and not folder.is_symlink()
    return folder if safe else None


@dataclass(frozen=True)
class ServerFiles:
    """The files of one key's shared server."""

    state: Path
    lease: Path
    start: Path
    log: Path

    @staticmethod
    def of(folder: Path) -> "ServerFiles":
        chosen = {
            k: v
            for k, v in sorted(os.environ.items())
            if k in _KEY_VARIABLES or k.startswith("PREFECT_SERVER_") or k.endswith("DATABASE_CONNECTION_URL")
        }
        key = hashlib.sha256(json.dumps(chosen).encode()).hexdigest()[:16]
        stem = folder / f"prefect-server-{key}"
        return ServerFiles(
            Path(f"{stem}.json"), Path(f"{stem}.lease"), Path(f"{stem}.start"), Path(f"{stem}.log")
        )


def prefect_version() -> str:
    from importlib.metadata import version  # noqa: PLC0415 - without importing Prefect

    return version("prefect")


def read_state(path: Path) -> dict | None:
    try:
        state = json.loads(path.read_text())
        return state if isinstance(state, dict) and {"pid", "port", "url", "prefect"} <= set(state) else None
    except (OSError, ValueError):
        return None


def is_server(state: dict) -> bool:
    """Is the state file's pid alive and our server process on its port (not a reused pid)?"""
    try:
        command = psutil.Process(int(state["pid"])).cmdline()
    except (psutil.Error, ValueError, TypeError):
        return False
    return any(part.endswith("server/process.py") for part in command) and str(state["port"]) in command


def answers(url: str, version: str, timeout_s: float = 5.0) -> bool:
    """The API is healthy and runs Prefect `version`."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as reply:
            if reply.status != 200:
                return False
        with urllib.request.urlopen(f"{url}/admin/version", timeout=timeout_s) as reply:
            return json.loads(reply.read()) == version
    except (OSError, ValueError):
        return False


def _flock(path: Path, how: int, *, wait_s: float) -> IO[str] | None:
    """An flock on `path` (waiting at most wait_s), or None."""
    handle = path.open("a")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, how | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.1)


@dataclass
class Found:
    """What `find_or_start` found: a running server's url and pid, or None to start one (holding
    the start lock), and the lease this sweep holds either way."""

    url: str | None
    pid: int | None
    lease: IO[str]
    start_lock: IO[str] | None


def find_or_start(files: ServerFiles) -> Found | None:
    """A usable running server, or the locks to start one; None: use a private server."""
    start = _flock(files.start, fcntl.LOCK_EX, wait_s=START_WAIT_S)
    if start is None:
        return None
    state = read_state(files.state)
    if state is not None and not is_server(state):
        files.state.unlink(missing_ok=True)  # stale: a dead pid, or someone else's process
        state = None
    if state is not None and state["prefect"] != prefect_version():
        start.close()
        return None  # another Prefect version's server on this database: not ours to use or stop
    if state is not None:
        lease = _flock(files.lease, fcntl.LOCK_SH, wait_s=1.0)  # its idle check holds it for an instant
        if lease is not None and answers(state["url"], prefect_version()):
            start.close()
            return Found(url=state["url"], pid=int(state["pid"]), lease=lease, start_lock=None)
        if lease is not None:  # alive but not answering: leave it, use a private server
            lease.close()
            start.close()
            return None
        # It is stopping (it holds the lease exclusively until it exits): start a new one.
    lease = _flock(files.lease, fcntl.LOCK_SH, wait_s=30)
    if lease is None:
        start.close()
        return None
    return Found(url=None, pid=None, lease=lease, start_lock=start)
