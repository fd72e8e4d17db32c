"""Choosing a cell's executor, and the life of the sweep's worker processes.

The one place that decides where a cell's jobs run. A cell trains in worker processes when
`runner.pool=process`, it runs on the CPU (a GPU is driven from this process) and its state is
visible to other processes (not `memory://`); otherwise in the calling thread.
"""

import threading
from collections.abc import Mapping
from typing import Any

from fedsweep.cell import cell_env, resolve_device, warm_imports
from fedsweep.checkpoint.storage import visible_to_other_processes
from fedsweep.execution.base import Executor, InThread
from fedsweep.execution.processes import Processes
from fedsweep.execution.workers import WorkerPool, usable_cpus

_pool: WorkerPool | None = None
_lock = threading.Lock()


def parallel_clients(max_parallel_clients: int) -> int:
    """`runner.max_parallel_clients`, with 0 meaning one per usable CPU."""
    return max_parallel_clients or usable_cpus()


def wants_processes(config: Mapping[str, Any], cell_dir: str) -> bool:
    """Whether the cell's jobs run in worker processes (see the module docstring)."""
    runner = config["runner"]
    return (runner["pool"] == "process" and visible_to_other_processes(cell_dir)
            and resolve_device(runner["device"]).type == "cpu")


def start(cells: list[tuple[Mapping[str, Any], str]]) -> None:
    """Start the worker processes the sweep's cells (config, folder) need, if any.

    Called first thing, while this process has no other thread, so that the workers fork (cheap,
    torch already imported) rather than spawn.
    """
    global _pool  # noqa: PLW0603 - one pool per process, like the cell runtimes
    runners = [config["runner"] for config, cell_dir in cells if wants_processes(config, cell_dir)]
    with _lock:
        if _pool is None and runners:
            warm_imports()  # paid once here and inherited, instead of once per worker
            size = max(parallel_clients(r["max_parallel_clients"]) for r in runners)
            _pool = WorkerPool(size, torch_threads=1)  # each job then sets its cell's (fedsweep/jobs.py)


def shutdown() -> None:
    """Stop the worker processes."""
    global _pool  # noqa: PLW0603
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None


def executor_for(cell_dir: str) -> Executor:
    """Where the jobs of the cell in `cell_dir` run."""
    config = cell_env(cell_dir).runtime.config
    if not wants_processes(config, cell_dir):
        return InThread()
    if _pool is None:
        start([(config, cell_dir)])  # a cell run on its own (tests, a later cell of another kind)
    assert _pool is not None
    return Processes(_pool)
