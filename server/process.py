"""A fedsweep Prefect server's process (started by server/private.py): uvicorn serving Prefect's API,
stopped by SIGUSR1 only, or, when shared, by itself once no sweep has used it for a while.

A batch scheduler stops a job by sending SIGTERM to every one of its processes (SLURM's `scancel`
and time limit, followed by SIGKILL after its KillWait). The sweep then finishes its round, commits
and tells the server what happened; a server that had quit at the same SIGTERM could hear none of
it. So this process ignores SIGTERM and SIGINT: a private server is stopped by its sweep, last, with
SIGUSR1 (uvicorn's graceful shutdown), and the kernel kills it when the sweep dies (PR_SET_PDEATHSIG).

A shared server (server/shared.py) outlives the sweep that started it. Every sweep using it
holds a shared flock on its lease file for as long as it runs (the kernel drops it when the sweep
dies, kill -9 included). Every few seconds the server tries an exclusive flock on the same file:
while that fails, some sweep is using it. After `idle_s` seconds of successes in a row it keeps the
exclusive lock (a sweep arriving now cannot take its shared one, and starts a new server instead of
using one that is going), deletes its state file if that still names it, and stops gracefully.

    python server/process.py PORT                       # private
    python server/process.py PORT IDLE_S LEASE STATE    # shared

It imports nothing of the project.
"""

import contextlib
import fcntl
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import uvicorn

STOP = signal.SIGUSR1


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        signal.signal(STOP, self.handle_exit)  # a second SIGUSR1 forces the exit
        yield


def _unclaimed(state: Path) -> None:
    """Delete the state file if it names this process (a newer server may have replaced it)."""
    try:
        if json.loads(state.read_text()).get("pid") == os.getpid():
            state.unlink()
    except (OSError, ValueError):
        pass


def announce(server: uvicorn.Server, *, port: int, idle_s: float, state: Path) -> None:
    """Once the API answers, write the state file that sweeps find this server by (atomically)."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    body = {
        "pid": os.getpid(),
        "port": port,
        "url": f"http://127.0.0.1:{port}/api",
        "prefect": version("prefect"),
        "idle_s": idle_s,
        "started": time.time(),
    }
    temp = state.with_name(f".{state.name}.{os.getpid()}.tmp")
    with temp.open("w") as out:
        json.dump(body, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, state)


def watch_idle(server: uvicorn.Server, *, port: int, idle_s: float, lease: Path, state: Path) -> None:
    """Write the state file, then stop `server` once no sweep has held the lease for `idle_s`
    seconds (runs in a daemon thread)."""
    announce(server, port=port, idle_s=idle_s, state=state)
    handle = lease.open("a")
    poll_s = max(0.2, min(5.0, idle_s / 4))
    idle_since: float | None = None
    while not server.should_exit:
        time.sleep(poll_s)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            idle_since = None  # a sweep holds it
            continue
        now = time.monotonic()
        idle_since = now if idle_since is None else idle_since
        if now - idle_since >= idle_s:
            _unclaimed(state)  # the exclusive lock is held until this process exits
            print(f"no sweep for {idle_s:g} s: stopping", flush=True)
            server.should_exit = True
            return
        fcntl.flock(handle, fcntl.LOCK_UN)


def main(
    port: int, idle_s: float | None = None, lease: Path | None = None, state: Path | None = None
) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    config = uvicorn.Config(
        "prefect.server.api.server:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="on",
    )
    server = _Server(config)
    if idle_s is not None and lease is not None and state is not None:
        watch = {"port": port, "idle_s": idle_s, "lease": lease, "state": state}
        threading.Thread(
            target=watch_idle, args=(server,), kwargs=watch, name="idle-exit", daemon=True
        ).start()
    server.run()
    if state is not None:
        _unclaimed(state)  # stopped by SIGUSR1: the file must not send sweeps to a dead port


if __name__ == "__main__":
    if len(sys.argv) == 5:
        main(int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main(int(sys.argv[1]))
