"""Per-process access to a cell's runtime and stores, keyed by the cell's folder.

Tasks receive only small references (the cell folder, round and client numbers, blob references);
the runtime is built once per process from `cell.json` in the cell folder, so a task can run in
this process, a worker process or a resumed run alike.
"""

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fedsweep import steps
from fedsweep.cell import CellRuntime, build_runtime, data_key, install_data, packed_data, resolve_device
from fedsweep.checkpoint.blobs import BlobStore
from fedsweep.checkpoint.storage import open_storage, visible_to_other_processes
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.workers import WorkerPool, usable_cpus

CONFIG_FILE = "cell.json"


@dataclass(frozen=True)
class CellEnv:
    """A cell's runtime and where its state lives."""

    runtime: CellRuntime
    blobs: BlobStore
    checkpoints: CheckpointStore
    key: str


def write_cell_config(cell_dir: str, *, key: str, name: str, config: dict) -> None:
    """Record the resolved config beside the cell's state (what every process rebuilds from)."""
    text = json.dumps({"key": key, "name": name, "config": config}, indent=1, sort_keys=True)
    open_storage(cell_dir).write(CONFIG_FILE, text.encode())


@lru_cache(maxsize=8)
def cell_env(cell_dir: str) -> CellEnv:
    """The cell's runtime and stores, built once per process."""
    record = json.loads(open_storage(cell_dir).read(CONFIG_FILE))
    config = record["config"]
    return CellEnv(
        runtime=build_runtime(config),
        blobs=BlobStore(storage=open_storage(f"{cell_dir.rstrip('/')}/work")),
        checkpoints=CheckpointStore(
            storage=open_storage(f"{cell_dir.rstrip('/')}/checkpoints"), keep=int(config["checkpoint"]["keep"])
        ),
        key=record["key"],
    )


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def parallel_clients(runner: dict[str, Any]) -> int:
    """`runner.max_parallel_clients`, with 0 meaning one per usable CPU."""
    return int(runner["max_parallel_clients"]) or usable_cpus()


def start_worker_pool(runners: list[dict[str, Any]]) -> WorkerPool:
    """This process's worker pool for `runner.pool=process`, big enough for each of `runners`.

    Started once; the sweep starts it first thing, while this process has no other thread, so that
    the workers fork (cheap) rather than spawn.
    """
    global _pool  # noqa: PLW0603 - one pool per process, like the cell runtimes above
    with _pool_lock:
        if _pool is None:
            size = max(parallel_clients(r) for r in runners)
            threads = max(int(r["torch_threads"]) for r in runners) or max(1, usable_cpus() // size)
            _pool = WorkerPool(size, torch_threads=threads)
        return _pool


def stop_worker_pool() -> None:
    global _pool  # noqa: PLW0603
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


def uses_workers(config: dict[str, Any], cell_dir: str) -> bool:
    """Whether a cell trains in worker processes: `runner.pool=process`, on the CPU (a GPU is driven
    from this process), with state that other processes can see (not `memory://`)."""
    runner = config["runner"]
    return (runner["pool"] == "process" and visible_to_other_processes(cell_dir)
            and resolve_device(str(runner["device"])).type == "cpu")


def _workers(env: CellEnv, cell_dir: str) -> tuple[WorkerPool, tuple] | None:
    """The worker pool and its data set-up for this cell, or None to work in this process."""
    config = env.runtime.config
    if not uses_workers(config, cell_dir):
        return None
    return start_worker_pool([config["runner"]]), (data_key(config), install_data, lambda: packed_data(config))


def client_epoch(cell_dir: str, **kwargs: Any) -> steps.Ref:
    """One client epoch of the cell in `cell_dir`: here, or in a worker process (`runner.pool`)."""
    env = cell_env(cell_dir)
    workers = _workers(env, cell_dir)
    if workers is None:
        return steps.client_epoch(env.runtime, env.blobs, **kwargs)
    pool, setup = workers
    return pool.call(_client_epoch_here, cell_dir, kwargs, setup=setup)


def evaluate(cell_dir: str, ref: steps.Ref) -> dict[str, float]:
    """Accuracy and loss of the model at `ref`: the test split in one part here, or in one part
    per worker process, side by side (one intra-op thread each beats two threads in one process)."""
    env = cell_env(cell_dir)
    workers = _workers(env, cell_dir)
    if workers is None:
        return steps.combine_evaluations([steps.evaluate_global(env.runtime, env.blobs, ref)])
    pool, setup = workers
    calls = [(cell_dir, ref, part, pool.size) for part in range(pool.size)]
    return steps.combine_evaluations(pool.map(_evaluate_here, calls, setup=setup))


def _client_epoch_here(cell_dir: str, kwargs: dict[str, Any]) -> steps.Ref:
    """In a worker: the cell's runtime is built from cell.json over the data the sweep shipped."""
    env = cell_env(cell_dir)
    return steps.client_epoch(env.runtime, env.blobs, **kwargs)


def _evaluate_here(cell_dir: str, ref: steps.Ref, part: int, parts: int) -> dict[str, float]:
    env = cell_env(cell_dir)
    return steps.evaluate_global(env.runtime, env.blobs, ref, part=part, parts=parts)
