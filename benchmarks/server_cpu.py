"""The CPU a benchmarked sweep's Prefect server spends: the shared server (server/shared.py) that the
sweep starts, or finds, in a runtime folder the benchmark gives it (FEDSWEEP_RUNTIME_DIR), read from
outside through its state file."""

import json
import signal
import time
from pathlib import Path

import psutil


def server_of(runtime: Path) -> psutil.Process | None:
    """The shared server named by a state file in `runtime` (None if there is none, or it is gone)."""
    for state in Path(runtime).glob("prefect-server-*.json"):
        try:
            return psutil.Process(int(json.loads(state.read_text())["pid"]))
        except (OSError, ValueError, KeyError, psutil.Error):
            continue
    return None


def cpu_s(process: psutil.Process | None) -> float:
    """User + system CPU seconds of `process` so far (0 when there is none)."""
    if process is None:
        return 0.0
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


def settled_cpu_s(process: psutil.Process | None, timeout_s: float = 60.0) -> float:
    """`cpu_s` once the server has digested what it was sent (under 20 ms of CPU in a second)."""
    deadline, last = time.monotonic() + timeout_s, cpu_s(process)
    while process is not None and time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_s(process)
        if now - last < 0.02:
            return now
        last = now
    return cpu_s(process)


def stop(process: psutil.Process | None) -> None:
    """Stop the server now (its own graceful stop, SIGUSR1), rather than after its idle timeout."""
    if process is None:
        return
    try:
        process.send_signal(signal.SIGUSR1)
        process.wait(timeout=20)
    except (psutil.Error, psutil.TimeoutExpired):
        pass
