"""What does one Prefect task cost? A trivial task inside a flow vs calling the function directly.

fedsweep makes every client epoch, aggregation, evaluation and checkpoint write a task (~13 tasks a
round on the bench workload; MLflow logging is a plain call), so the per-task overhead times the
number of tasks is a floor under its overhead against a bare loop. Measured with fedsweep's
settings: a private API
server (server.private.LocalServer), the flow heartbeat off, results persisted as JSON under a
cache_key_fn, a ThreadPoolTaskRunner with one worker (runner.max_parallel_clients=1).

Modes, each N tasks in one flow run (after a few warm-up tasks), as `task(i)` and as
`task.submit(i).result()` (what fedsweep's client epochs do):

    direct              the plain function, no Prefect
    no persistence      persist_result=False, no cache policy
    persist + cache key persist_result=True, result_serializer="json", cache_key_fn (all misses)
    cached hit          the same tasks and keys again in a new flow run: every one a cache hit
    empty flow run      a flow with no tasks (fedsweep runs one per cell), before and after the tasks
    server CPU          CPU seconds the private Prefect server spends per task run (it records every
                        state change) and per empty flow run, measured on its process once it has
                        caught up
    recorded            task runs in the server's database at the end / task runs made: the UI's view

Two servers, one after the other, each on a fresh database of its own: with fedsweep's settings for
Prefect's task-run recorder (server/private.py: events written in batches, flushed every second) and
with Prefect's defaults (each event in a transaction of its own). `--side` runs one of them.

    python benchmarks/task_overhead.py            # N=200, both sides
    python benchmarks/task_overhead.py --n 500 --side fedsweep --out /tmp/task_overhead.json
"""

import argparse
import atexit
import datetime
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil


def trivial(i: int) -> int:
    """The work: nothing, so that all that is measured is the machinery around it."""
    return i + 1


def measure(n: int, warmup: int, server_cpu: Any) -> dict[str, dict[str, float]]:
    """ms per task for each mode and call style, the server's CPU per task, and the cost of an
    empty flow run. `server_cpu()`: the server's CPU seconds once it has digested what it was sent."""
    from prefect import flow, task  # only once PREFECT_API_URL points at our server
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    token = uuid.uuid4().hex[:8]  # fresh keys: the first persisted pass must miss
    plain = task(trivial, name="no-persistence", persist_result=False, cache_policy=NO_CACHE)
    persisted = task(
        trivial,
        name="persisted",
        persist_result=True,
        result_serializer="json",
        cache_key_fn=lambda ctx, params: f"overhead-{token}-{params['i']}",
    )

    def timed_calls(fn: Any, style: str) -> float:
        for i in range(-warmup, 0):  # negative ids: warm-up keys never collide with measured ones
            fn(i) if style == "call" else fn.submit(i).result()
        started = time.perf_counter()
        for i in range(n):
            fn(i) if style == "call" else fn.submit(i).result()
        return (time.perf_counter() - started) / n * 1000

    @flow(name="task-overhead", task_runner=ThreadPoolTaskRunner(max_workers=1))
    def bench(t: Any, style: str) -> float:
        return timed_calls(t, style)

    @flow(name="empty-flow")
    def empty() -> None:
        return None

    def flow_runs() -> float:
        started = time.perf_counter()
        for _ in range(5):
            empty()
        return (time.perf_counter() - started) / 5 * 1000

    empty()  # warm-up: the first flow run pays for lazy imports and client set-up
    before = server_cpu()
    out: dict[str, dict[str, float]] = {
        "direct": {"call": timed_calls(trivial, "call")},
        "empty flow run": {"call": flow_runs()},
    }
    out["  server CPU, empty flow run"] = {"call": (server_cpu() - before) / 5 * 1000}
    for mode, fn in (("no persistence", plain), ("persist + cache key", persisted)):
        before = server_cpu()
        out[mode] = {style: bench(fn, style) for style in ("call", "submit")}
        # Each task run is 3 state events (and logs) the server records in its database.
        out[f"  server CPU, {mode}"] = {"call": (server_cpu() - before) / (2 * (n + warmup)) * 1000}
    # Same keys as the persisted pass just wrote: every task is a cache hit now.
    out["cached hit"] = {style: bench(persisted, style) for style in ("call", "submit")}
    # Again, now that the server has thousands of task-run events to digest.
    out["empty flow run, after"] = {"call": flow_runs()}
    return out


# Prefect's own defaults for its task-run recorder (fedsweep's server sets batches: server/private.py).
PREFECT_RECORDER = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "1",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "1",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "5",
}


def side(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """One server (fedsweep's recorder settings, or Prefect's defaults) on a fresh database: figures."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    from server.private import LocalServer

    home = tmp / name
    home.mkdir()
    saved = dict(os.environ)
    os.environ["PREFECT_HOME"] = str(home)
    if name == "prefect":
        os.environ.update(PREFECT_RECORDER)
    try:
        server = LocalServer(log_path=home / "server.log")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    started = time.perf_counter()
    server.wait_ready(timeout_s=300)
    ready_s = time.perf_counter() - started
    updates = {
        PREFECT_API_URL: server.url,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(home / "results"),
    }
    server_process = psutil.Process(server.process.pid)

    def server_cpu() -> float:
        server.wait_idle(timeout_s=300)
        time.sleep(1.5)  # past the recorder's next flush (every second)
        server.wait_idle(timeout_s=300)
        return sum(server_process.cpu_times()[:2])

    with temporary_settings(updates=updates):
        figures = measure(args.n, args.warmup, server_cpu)
        _flush()
    server.stop()
    made = 4 * (args.n + args.warmup)  # no persistence, persisted, cached hit; each as call and submit
    made += 2 * (args.n + args.warmup)
    with sqlite3.connect(home / "prefect.db") as db:
        (recorded,) = db.execute("SELECT count(*) FROM task_run").fetchone()
    return {"figures": figures, "ready_s": ready_s, "recorded": recorded, "made": made}


def _flush() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        service.drain_all(timeout=60, at_exit=False)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Per-task overhead of Prefect with fedsweep's settings.")
    p.add_argument("--n", type=int, default=200, help="tasks per measurement")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--side", choices=("fedsweep", "prefect"), help="one server only (default: both)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="task_overhead-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    load = os.getloadavg()[0]
    sides = {name: side(name, args, tmp) for name in ("fedsweep", "prefect") if args.side in (None, name)}
    print(f"Prefect per-task overhead, N={args.n} trivial tasks, load {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(
        f"{'mode':<34} "
        + " ".join(f"{name + ' ' + style:>17}" for name in sides for style in ("task(i)", "submit"))
    )
    for mode in next(iter(sides.values()))["figures"]:
        cells = []
        for figures in sides.values():
            row = figures["figures"][mode]
            cells += [f"{row['call']:14.2f} ms", f"{row['submit']:14.2f} ms" if "submit" in row else " " * 17]
        print(f"{mode:<34} " + " ".join(cells))
    for name, figures in sides.items():
        print(
            f"{name}: server ready after {figures['ready_s']:.1f} s; task runs recorded "
            f"{figures['recorded']} of {figures['made']}"
        )
    if args.out:
        record = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "n": args.n,
            "load_before": load,
            "load_after": os.getloadavg()[0],
            "sides": sides,
        }
        args.out.write_text(json.dumps(record, indent=1))
        print(f"figures: {args.out}")


if __name__ == "__main__":
    main()
