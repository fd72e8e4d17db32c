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

A request that Prefect answers 503 (its sqlite database is locked by another writer) is not sent
back at once: `HoldBusy` runs it again after a short pause, for up to HOLD_S seconds, and only then
answers 503, with `Retry-After: 1`. Prefect's client otherwise backs off exponentially from its own
clock (2, 4, ... 146 s at the 7th attempt), long after the lock is gone; held here, a request goes
through within half a second of the lock's release, and a client that still gets a 503 retries in a
second (fedsweep's servers only: a server of the user's own, PREFECT_API_URL, keeps Prefect's ways).

    python server/process.py PORT                       # private
    python server/process.py PORT IDLE_S LEASE STATE    # shared

It imports nothing of the project.
"""

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import uvicorn

STOP = signal.SIGUSR1
BUSY_PATH = "/fedsweep/busy"  # answered by HoldBusy itself, without touching the database
HOLD_S = 20.0  # under Prefect's client timeout (PREFECT_API_REQUEST_TIMEOUT, 60 s by default)
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class HoldBusy:
    """ASGI middleware: a request answered 503 is run again (its body replayed) after 0.05, 0.1, ...
    0.5 s pauses for up to `hold_s` seconds; then the 503 goes out with `Retry-After: 1`. A 503 comes
    from a transaction that failed and was rolled back, so running it again is what the client's own
    retry would do, only sooner. Counts are printed to the server's log."""

    def __init__(self, app: ASGIApp, hold_s: float = HOLD_S) -> None:
        self.app, self.hold_s = app, hold_s
        self.held = self.answered_503 = 0
        self.last_refusal: float | None = None

    async def __call__(self, scope: Message, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == BUSY_PATH:
            await self._busy(send)
            return
        await self._hold(scope, receive, send)

    async def _busy(self, send: Callable) -> None:
        """What a waiting sweep asks (server/records.py): is the database refusing requests now?"""
        ago = None if self.last_refusal is None else time.monotonic() - self.last_refusal
        body = json.dumps(
            {"refused": self.held + self.answered_503, "last_refusal_s": ago, "reason": "database is locked"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _hold(self, scope: Message, receive: Callable, send: Callable) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away before sending it all
                return
            body, more = body + message.get("body", b""), message.get("more_body", False)
        loop = asyncio.get_running_loop()
        give_up, pause = loop.time() + self.hold_s, 0.05
        while True:
            last = loop.time() >= give_up
            # Starlette's routing writes into the scope it is given (a mount's root path): each try
            # gets a fresh copy of the request's own.
            fresh = {**scope, "state": dict(scope.get("state") or {})}
            status = await self._once(fresh, body, receive, send, hold=not last)
            if status != 503:
                return
            self.last_refusal = time.monotonic()
            if last:
                self.answered_503 += 1
                print(
                    f"answered 503 after holding a request {self.hold_s:g} s ({self.answered_503} so far)",
                    flush=True,
                )
                return
            self.held += 1
            if self.held in (1, 10, 100) or self.held % 1000 == 0:
                print(f"held requests the database refused: {self.held} so far", flush=True)
            await asyncio.sleep(min(pause, max(0.0, give_up - loop.time())))
            pause = min(2 * pause, 0.5)

    async def _once(
        self, scope: Message, body: bytes, receive: Callable, send: Callable, *, hold: bool
    ) -> int:
        """Run the request once; a 503 is swallowed when `hold`, else sent with Retry-After."""
        sent_body = False
        status = 0

        async def replay() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, when it comes

        async def respond(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 503 and not hold:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"retry-after"]
                    message = {**message, "headers": [*headers, (b"retry-after", b"1")]}
            if status == 503 and hold:
                return
            await send(message)

        try:
            await self.app(scope, replay, respond)
        except Exception:
            # Starlette re-raises what its exception handler answered (Prefect's handler turns a locked
            # database into the 503); the answer is complete, the error is no news.
            if status != 503:
                raise
        return status


def create_app() -> ASGIApp:
    """Prefect's API app behind `HoldBusy` (uvicorn calls this factory in the server process)."""
    from prefect.server.api.server import create_app as prefect_app  # noqa: PLC0415 - in the server process only

    return HoldBusy(prefect_app())


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
        create_app,
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
