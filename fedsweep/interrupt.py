"""Ctrl-C and SIGTERM: stop after the running round, keep what is committed, exit 130 / 143.

The sweep's flows run in a thread of their own (`run_interruptible`) while the main thread waits
and handles the signals. Two reasons: Python delivers signals to the main thread only, so a handler
there is never in the middle of Prefect's or MLflow's work; and Prefect installs its own SIGTERM
handler (which crashes the flow run at once) only when a flow runs in the main thread.

- **Before the flows start** (planning, start-up) nothing needs committing: a signal prints one
  line and the process exits at once (the private server and the workers die with it).
- **First signal while the flows run:** one line saying the sweep is stopping. The round loop sees
  `stop_requested()` at the top of its next round (the `Interrupts` callback of flows/callbacks.py),
  commits and returns a STOPPED row (flows/cell_flow.py), and calls `wrapping_up()`: the wrap-up
  gets a fresh `timeout_s` (at least `WRAP_UP_S`). The sweep flow runs no further cell; the summary
  is written, the flow runs end Cancelled (as the MLflow runs end KILLED), Prefect's client is
  flushed, the private server is stopped last, and the process exits with 128 + signal.
- **If the running round takes longer than `timeout_s`, or the wrap-up longer than its bound, or on
  a second signal:** the hard stop. The callbacks given to `run_interruptible` (mark this process's
  flow runs Cancelled and MLflow runs KILLED, flush, stop the server) run for a few seconds at
  most, then `os._exit`. Everything committed stays:
  every file is written atomically, and a re-run resumes from the last committed round.
- **A third signal** exits at once.
"""

import atexit
import contextvars
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")
HARD_STOP_S = 6.0  # the most the hard stop's callbacks may take before the process exits anyway
WRAP_UP_S = 30.0  # the least the wrap-up after a stopped round gets (a loaded machine: seconds, not one)


class StopRequested(Exception):
    """Raised by the round loop when a stop was requested: its last round is committed."""


class _State:
    signum: int | None = None
    count = 0
    running = False  # the flows run in their thread; the main thread waits in `run_interruptible`
    deadline = float("inf")
    waiting_for = "the running round"  # what the deadline bounds: the round, then the wrap-up
    bound_s = 0.0  # the deadline's length
    timeout_s = 10.0


_state = _State()


def stop_requested() -> bool:
    """Whether SIGINT or SIGTERM was received (the round loop stops before its next round)."""
    return _state.signum is not None


def wrapping_up() -> None:
    """The running round has ended and is committed after a stop: what is left (the summary, the
    tracking) gets a fresh `timeout_s`, at least `WRAP_UP_S`, before the hard stop, so it is not cut
    short by the round's time."""
    if _state.signum is not None and _state.count == 1:
        _state.bound_s = max(_state.timeout_s, WRAP_UP_S)
        _state.deadline = time.monotonic() + _state.bound_s
        _state.waiting_for = "the summary after the stopped round"


def exit_status() -> int | None:
    """128 + the signal's number (130 for SIGINT, 143 for SIGTERM), or None without a signal."""
    return None if _state.signum is None else 128 + _state.signum


def _say(line: str) -> None:
    print(f"\n{line}", file=sys.stderr, flush=True)


def _name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _on_signal(signum: int, frame: Any) -> None:  # signal handler signature
    _state.count += 1
    if _state.count == 1:
        _state.signum = signum
        if not _state.running:
            _say(f"{_name(signum)}: stopping (no round was running)")
            _exit()
        _state.bound_s = _state.timeout_s
        _state.deadline = time.monotonic() + _state.bound_s
        _say(
            f"{_name(signum)}: stopping after the running round (at most {_state.timeout_s:g} s); "
            "committed rounds are kept and re-running resumes. Ctrl-C again to stop now."
        )
    elif _state.count == 2 and _state.running:
        _say(f"{_name(signum)} again: stopping now")  # the waiting loop does the hard stop
    else:
        _exit()


def _exit() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_status() or 1)


def install(timeout_s: float | None = None) -> None:
    """Handle SIGINT and SIGTERM from now on (call from the main thread); `timeout_s` bounds the
    wait for the running round after the first signal."""
    if timeout_s is not None:
        _state.timeout_s = float(timeout_s)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)


def run_interruptible(fn: Callable[[], T], *, timeout_s: float, on_hard_stop: list[Callable[[], None]]) -> T:
    """Run `fn` in a thread of its own (with this thread's context variables: Prefect's settings
    and tags) while this, the main thread, handles the signals; returns what `fn` returns."""
    install(timeout_s)
    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = context.run(fn)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="fedsweep-sweep", daemon=True)
    _state.running = True
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
            if _state.count >= 2 or time.monotonic() > _state.deadline:
                if _state.count < 2:
                    _say(f"{_state.waiting_for} did not end within {_state.bound_s:g} s: stopping now")
                _hard_stop(on_hard_stop)
    finally:
        _state.running = False
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def finish(code: int | str | None) -> NoReturn:
    """Exit as Python would with `code`, less the finalisation of its modules.

    Like Python: wait for non-daemon threads (bounded here), run the atexit handlers (Prefect's
    last flush, then the private server's stop), flush stdout and stderr. Then `os._exit`, skipping
    the garbage collection of every module that torch, Prefect and MLflow loaded: measured 5 s of a
    loaded 2-core machine at the end of each sweep, with nothing left to save.
    """
    deadline = time.monotonic() + 10
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    atexit._run_exitfuncs()
    if isinstance(code, str):
        print(code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def _hard_stop(callbacks: list[Callable[[], None]]) -> None:
    """Run the callbacks in order, for at most HARD_STOP_S in all, then exit."""
    _state.count = max(_state.count, 2)  # a further signal exits at once

    def run_all() -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - best effort: the process exits next anyway
                pass

    worker = threading.Thread(target=run_all, name="fedsweep-hard-stop", daemon=True)
    worker.start()
    worker.join(HARD_STOP_S)
    _exit()
