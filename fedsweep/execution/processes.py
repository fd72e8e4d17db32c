"""The process backend: jobs run in the sweep's worker processes, over data shipped once.

Sent to a worker through torch.multiprocessing, a dataset's tensors travel as shared memory: the
worker maps the same pages instead of loading or copying the data, so one copy serves every process.
A worker receives a cell's data before its first job for that data (`WorkerPool.call`'s `setup`).
"""

from collections.abc import Mapping
from typing import Any

import torch

from fedsweep.cell import cell_env, data_key, load_data, remember_data
from fedsweep.data.base import LoadedData, Split
from fedsweep.execution.base import Job
from fedsweep.execution.workers import WorkerPool


class Processes:
    """Jobs in an idle worker of `pool`."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.width = pool.size

    def run(self, cell_dir: str, job: Job, *args: Any) -> Any:
        return self.pool.call(job, cell_dir, *args, setup=_setup(cell_dir))

    def map(self, cell_dir: str, job: Job, calls: list[tuple]) -> list[Any]:
        return self.pool.map(job, [(cell_dir, *args) for args in calls], setup=_setup(cell_dir))


def _setup(cell_dir: str) -> tuple[str, Any, Any]:
    config = cell_env(cell_dir).runtime.config
    return data_key(config), install_data, lambda: packed_data(config)


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
