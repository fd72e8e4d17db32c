"""A cell's data: the dataset (loaded once per process) and the partition into clients.

The dataset is cached per process by the config that defines it (dataset, number of clients, seed):
cells that differ only in method share one copy in memory, and a worker process is handed the
sweep's copy as shared memory (fedsweep/execution/processes.py, `remember_data`).
"""

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from fedsweep.config.plugins import build
from fedsweep.data.base import LoadedData, Split
from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition.natural import Natural
from fedsweep.rng import generator

_DATA: "OrderedDict[str, LoadedData]" = OrderedDict()
_DATA_KEPT = 2  # datasets held per process (a sweep over num_clients loads one per value)
_DATA_LOCK = threading.Lock()


@dataclass(frozen=True, kw_only=True, eq=False)
class CellData:
    """The cell's samples and who holds them."""

    data: LoadedData
    clients: ClientIndex  # client c's sample indices: clients[c] (fedsweep/data/clients.py)
    # The client of each test sample where clients have test samples of their own (the dataset's
    # natural split as the partition): the evaluation then reports accuracy across clients too.
    test_owner: torch.Tensor | None = None

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    @cached_property
    def num_samples(self) -> torch.Tensor:
        """int64 [num_clients]: each client's number of training samples."""
        return self.clients.sizes


def build_data(config: Mapping[str, Any]) -> CellData:
    """The cell's dataset and its partition into `num_clients` clients (seeded by the cell's seed)."""
    data = load_data(config)
    partition = build(config["partition"], key="partition")
    clients = partition.split(
        labels=data.train.y,
        num_clients=int(config["num_clients"]),
        natural=data.natural,
        generator=generator(int(config["seed"]), "partition"),
    )
    return CellData(
        data=data, clients=clients, test_owner=data.test_owner if isinstance(partition, Natural) else None
    )


def data_key(config: Mapping[str, Any]) -> str:
    """What a cell's data depends on: its dataset config, number of clients and seed."""
    return json.dumps([config["dataset"], int(config["num_clients"]), int(config["seed"])], sort_keys=True)


def load_data(config: Mapping[str, Any]) -> LoadedData:
    """The cell's dataset, loaded once per process for identical dataset configs."""
    key = data_key(config)
    with _DATA_LOCK:
        if key in _DATA:
            _DATA.move_to_end(key)
            return _DATA[key]
        dataset = build(config["dataset"], key="dataset")
        data: LoadedData = dataset.load(num_clients=int(config["num_clients"]), seed=int(config["seed"]))
        _remember(key, data)
        return data


def _remember(key: str, data: LoadedData) -> None:
    _DATA[key] = data
    while len(_DATA) > _DATA_KEPT:
        _DATA.popitem(last=False)


def remember_data(key: str, data: LoadedData) -> None:
    """Make `data` this process's dataset for `key` (a worker process, given the sweep's copy)."""
    with _DATA_LOCK:
        _remember(key, data)


_ON_DEVICE: "OrderedDict[tuple[int, str, str], tuple[LoadedData, Split]]" = OrderedDict()


def on_device(data: LoadedData, split: str, device: torch.device) -> Split:
    """`data.train` or `data.test` on `device`: moved there once per process and kept (the latest
    `_DATA_KEPT` of them); on the CPU, the split itself."""
    part: Split = getattr(data, split)
    if device.type == "cpu":
        return part
    key = (id(data), split, str(device))
    with _DATA_LOCK:
        held = _ON_DEVICE.get(key)
        if held is not None and held[0] is data:
            _ON_DEVICE.move_to_end(key)
            return held[1]
        moved = Split(part.x.to(device), part.y.to(device))
        _ON_DEVICE[key] = (data, moved)
        while len(_ON_DEVICE) > 2 * _DATA_KEPT:
            _ON_DEVICE.popitem(last=False)
        return moved
