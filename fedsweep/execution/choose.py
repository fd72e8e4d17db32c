"""Choosing a cell's executor, and the life of the sweep's worker processes or Dask client.

The one place that decides where a cell's jobs run. A cell's jobs go to the Dask cluster when
`runner.pool=dask` (fedsweep/execution/dask.py; its state must be shared storage, checked before
the sweep starts). A cell trains in worker processes when `runner.pool=process`, it runs on the CPU
(a GPU is driven from this process) and its state is visible to other processes (not `memory://`);
otherwise in the calling thread.
"""

import threading
from collections.abc import Mapping
from typing import Any

from fedsweep.cell import cell_env, resolve_device, warm_imports
from fedsweep.checkpoint.storage import visible_to_other_processes
from fedsweep.execution.base import Executor, InThread
from fedsweep.execution.dask import DaskBackend, DaskExecutor
from fedsweep.execution.processes import Processes
from fedsweep.execution.workers import WorkerPool, usable_cpus

_pool: WorkerPool | None = None
_dask: DaskBackend | None = None
_lock = threading.Lock()


def parallel_clients(max_parallel_clients: int) -> int:
    """`runner.max_parallel_clients`, with 0 meaning one per usable CPU (per Dask worker thread
    while a Dask cluster serves the sweep)."""
    if max_parallel_clients:
        return max_parallel_clients
    return _dask.width() if _dask is not None else usable_cpus()


def wants_processes(config: Mapping[str, Any], cell_dir: str) -> bool:
    """Whether the cell's jobs run in worker processes (see the module docstring)."""
    runner = config["runner"]
    return (
        runner["pool"] == "process"
        and visible_to_other_processes(cell_dir)
        and resolve_device(runner["device"]).type == "cpu"
    )


def start(cells: list[tuple[Mapping[str, Any], str]]) -> None:
    """Start the worker processes the sweep's cells (config, folder) need, if any.

    Called first thing, while this process has no other thread, so that the workers fork (cheap,
    torch already imported) rather than spawn.
    """
    global _pool  # noqa: PLW0603 - one pool per process, like the cell runtimes
    dask = [config["runner"]["dask"] for config, _ in cells if config["runner"]["pool"] == "dask"]
    if dask:
        start_dask(dask[0])
    configs = [config for config, cell_dir in cells if wants_processes(config, cell_dir)]
    with _lock:
        if _pool is None and configs:
            warm_imports()  # paid once here and inherited, instead of once per worker
            size = max(parallel_clients(c["runner"]["max_parallel_clients"]) for c in configs)
            # A round deadline that fires kills the workers of the clients it cuts: keep a spare ready.
            spare = any((c.get("aggregation") or {}).get("round_timeout_s") for c in configs)
            # Jobs set their cell's intra-op threads themselves (fedsweep/jobs.py).
            _pool = WorkerPool(size, torch_threads=1, spare=spare, warm=_warm_worker)


def _warm_worker() -> None:
    """What a spare worker imports before it is needed: the jobs (the library) and torch._dynamo."""
    from fedsweep import jobs  # noqa: F401, PLC0415

    warm_imports()


def start_dask(settings: Mapping[str, Any]) -> DaskBackend:
    """Connect to (or start) the sweep's Dask cluster (`runner.dask`), once per process; a
    ConfigError, naming the key, when no cluster can be had."""
    global _dask  # noqa: PLW0603
    with _lock:
        if _dask is None:
            _dask = DaskBackend(settings)
        return _dask


def describe() -> dict[str, str]:
    """What the sweep's record notes about where jobs run: the Dask scheduler and dashboard."""
    return {} if _dask is None else {"dask_scheduler": _dask.address, "dask_dashboard": _dask.dashboard}


def round_measures(cell_dir: str) -> dict[str, float]:
    """Per-round metrics of the backend: `workers`, the Dask workers that ran the cell's jobs
    since the last call (none for local backends)."""
    if _dask is None or cell_env(cell_dir).runtime.config["runner"]["pool"] != "dask":
        return {}
    return {"workers": float(_dask.served(cell_dir))}


def shutdown() -> None:
    """Stop the worker processes, and the Dask client (and the cluster it started)."""
    global _pool, _dask  # noqa: PLW0603
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None
        if _dask is not None:
            _dask.close()
            _dask = None


def executor_for(cell_dir: str) -> Executor:
    """Where the jobs of the cell in `cell_dir` run."""
    config = cell_env(cell_dir).runtime.config
    if config["runner"]["pool"] == "dask":
        backend = _dask or start_dask(config["runner"]["dask"])
        backend.check_cell_visible(cell_dir)
        return DaskExecutor(backend)
    if not wants_processes(config, cell_dir):
        return InThread()
    if _pool is None:
        start([(config, cell_dir)])  # a cell run on its own (tests, a later cell of another kind)
    assert _pool is not None
    return Processes(_pool)
