"""The process engine: jobs in the sweep's long-lived worker processes, over data shipped once
(`runner/engine=process`, the default).

On a small CPU, training clients in single-thread processes side by side beats one process with as
many intra-op threads (benchmarks/process_vs_threads.py); the pool is fedsweep/execution/workers.py.
Sent to a worker through torch.multiprocessing, a dataset's tensors travel as shared memory: the
worker maps the same pages instead of loading or copying the data, so one copy serves every process.
A worker receives a cell's data before its first job for that data (`WorkerPool.call`'s `setup`).

A cell whose jobs cannot leave this process runs them in the calling thread instead: one on a GPU
(driven from this process), or one whose state lives in memory (`checkpoint.location=memory://`).
"""

import threading
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch

from fedsweep.cell.cell import Cell
from fedsweep.cell.data import data_key, load_data, remember_data
from fedsweep.cell.methods import may_batch, resolve_device, warm_imports
from fedsweep.checkpoint.storage import visible_to_other_processes
from fedsweep.data.base import LoadedData, Split
from fedsweep.execution.base import Config, Engine, Executor, InThread, Job, PlannedCell
from fedsweep.execution.workers import WorkerPool, usable_cpus


class ProcessEngine(Engine):
    """A pool of single-thread worker processes, one per usable CPU unless the cells ask for more
    client chains at once (`runner.max_parallel_clients`)."""

    def __init__(self) -> None:
        self.pool: WorkerPool | None = None
        self._lock = threading.Lock()

    def start(self, cells: Sequence[PlannedCell]) -> None:
        """Fork the workers now, while this process has no other thread (no imports to pay)."""
        configs = [c["config"] for c in cells if leaves_process(c["config"], c["dir"])]
        with self._lock:
            if self.pool is not None or not configs:
                return
            # Paid once here and inherited, instead of once per worker.
            runners = [c["runner"] for c in configs]
            batched = any(may_batch(r["batch_clients"], resolve_device(r["device"])) for r in runners)
            warm_imports(batched=batched)
            size = max(c["runner"]["max_parallel_clients"] or usable_cpus() for c in configs)
            # A round deadline that fires may kill every worker at once (the jobs it cuts that a signal
            # cannot stop): keep a warm spare per worker, so the round's evaluation never waits for one.
            deadline = any((c.get("aggregation") or {}).get("round_timeout_s") for c in configs)
            # Jobs set their cell's intra-op threads themselves (fedsweep/jobs.py).
            self.pool = WorkerPool(
                size, torch_threads=1, spares=size if deadline else 0, warm=partial(_warm_worker, batched)
            )

    def width(self) -> int:
        return usable_cpus()

    def executor(self, cell: Cell) -> Executor:
        if not leaves_process(cell.config, cell.dir):
            return InThread(cell.dir)
        if self.pool is None:
            self.start([{"config": cell.config, "dir": cell.dir}])  # a cell run on its own (tests)
        assert self.pool is not None
        return Processes(self.pool, cell)

    def shutdown(self) -> None:
        with self._lock:
            if self.pool is not None:
                self.pool.close()
                self.pool = None


def leaves_process(config: Config, cell_dir: str) -> bool:
    """Whether a cell's jobs can run in another process: on the CPU, with state other processes see."""
    return resolve_device(config["runner"]["device"]).type == "cpu" and visible_to_other_processes(cell_dir)


def _warm_worker(batched: bool) -> None:
    """What a spare worker imports before it is needed: the jobs (the library), and torch._dynamo if
    clients may train batched (`warm_imports`)."""
    from fedsweep import jobs  # noqa: F401, PLC0415 - imported in the worker, ahead of its first job

    warm_imports(batched=batched)


class Processes:
    """A cell's jobs in an idle worker of `pool`."""

    def __init__(self, pool: WorkerPool, cell: Cell) -> None:
        self.pool, self.cell_dir = pool, cell.dir
        self.width = pool.size
        config = cell.config
        self._setup = (data_key(config), install_data, lambda: packed_data(config))

    def run(self, job: Job, *args: Any) -> Any:
        return self.pool.call(job, self.cell_dir, *args, setup=self._setup)

    def map(self, job: Job, calls: list[tuple]) -> list[Any]:
        return self.pool.map(job, [(self.cell_dir, *args) for args in calls], setup=self._setup)


def packed_data(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, this process's copy of the cell's data as a few tensors) for `install_data` elsewhere."""
    data = load_data(config)
    natural = None
    if data.natural is not None:
        natural = (
            torch.cat(data.natural) if data.natural else torch.zeros(0, dtype=torch.int64),
            torch.tensor([len(c) for c in data.natural], dtype=torch.int64),
        )
    return data_key(config), {
        "train": (data.train.x, data.train.y),
        "test": (data.test.x, data.test.y),
        "num_classes": data.num_classes,
        "natural": natural,
        "test_owner": data.test_owner,
    }


def install_data(key: str, packed: dict[str, Any]) -> None:
    """Make `packed_data`'s output this process's data for `key` (a worker, before building cells)."""
    natural = None
    if packed["natural"] is not None:
        flat, sizes = packed["natural"]
        natural = list(flat.split(sizes.tolist()))
    remember_data(
        key,
        LoadedData(
            train=Split(*packed["train"]),
            test=Split(*packed["test"]),
            num_classes=int(packed["num_classes"]),
            natural=natural,
            test_owner=packed["test_owner"],
        ),
    )
