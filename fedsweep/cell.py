"""A cell's runtime: the dataset, clients, model and methods built once per process from its config.

Everything here is derived from the resolved config alone, so a worker process, a retry or a resumed
run rebuilds exactly the same objects. The dataset is cached per process by the config that defines
it: cells that differ only in method share one copy of the data in memory.
"""

import copy
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from collections import OrderedDict
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from fedsweep.data.base import LoadedData, Split
from fedsweep.faults.base import FaultPlan, validate_faults
from fedsweep.models.init import build_model
from fedsweep.policy import AggregationPolicy, aggregation_policy
from fedsweep.rng import derive_seed, generator
from fedsweep.selection.base import Selector
from fedsweep.strategies.base import Strategy
from fedsweep.train import LocalConfig
from fedsweep.weights import Params, state_of


@dataclass(frozen=True, kw_only=True)
class CellRuntime:
    """What a cell's tasks need; one instance per cell per process."""

    config: dict[str, Any]
    data: LoadedData
    clients: list[torch.Tensor]
    model: nn.Module
    initial_params: Params
    strategy: Strategy
    selector: Selector
    local: LocalConfig
    device: torch.device
    faults: FaultPlan
    policy: AggregationPolicy
    _per_thread: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    def thread_model(self) -> nn.Module:
        """The model instance this thread trains in: one per worker thread, reused for every client."""
        model = getattr(self._per_thread, "model", None)
        if model is None:
            model = self._per_thread.model = copy.deepcopy(self.model)
        return model


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; `cpu`/`cuda`/`cuda:1` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


_DATA: "OrderedDict[str, LoadedData]" = OrderedDict()
_DATA_KEPT = 2  # datasets held per process (a sweep over num_clients loads one per value)
_DATA_LOCK = threading.Lock()


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
        data = instantiate(config["dataset"]).load(num_clients=int(config["num_clients"]), seed=int(config["seed"]))
        _remember(key, data)
        return data


def _remember(key: str, data: LoadedData) -> None:
    _DATA[key] = data
    while len(_DATA) > _DATA_KEPT:
        _DATA.popitem(last=False)


def packed_data(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, this process's copy of the cell's data as a few tensors) for `install_data` elsewhere.

    Sent to a worker process through torch.multiprocessing, the tensors travel as shared memory:
    the worker maps the same pages instead of loading or copying the data.
    """
    data = load_data(config)
    natural = None
    if data.natural is not None:
        natural = (torch.cat(data.natural) if data.natural else torch.zeros(0, dtype=torch.int64),
                   torch.tensor([len(c) for c in data.natural], dtype=torch.int64))
    return data_key(config), {"train": (data.train.x, data.train.y), "test": (data.test.x, data.test.y),
                              "num_classes": data.num_classes, "natural": natural}


def install_data(key: str, packed: dict[str, Any]) -> None:
    """Make `packed_data`'s output this process's data for `key` (a worker, before building cells)."""
    natural = None
    if packed["natural"] is not None:
        flat, sizes = packed["natural"]
        natural = list(flat.split(sizes.tolist()))
    data = LoadedData(train=Split(*packed["train"]), test=Split(*packed["test"]),
                      num_classes=int(packed["num_classes"]), natural=natural)
    with _DATA_LOCK:
        _remember(key, data)


def warm_imports() -> None:
    """Construct an optimiser once: the first construction imports torch._dynamo (~1.5 s).

    Done on the thread that builds a runtime, it keeps that import out of worker threads, where a
    task timeout (an exception raised asynchronously in the thread) could interrupt it and leave
    the import lock held forever; done before worker processes fork, they inherit it.
    """
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)


def build_runtime(config: Mapping[str, Any]) -> CellRuntime:
    """Build a cell's runtime from its resolved config (plain dict)."""
    config = dict(config)
    seed, num_clients = int(config["seed"]), int(config["num_clients"])
    data = load_data(config)
    partition = instantiate(config["partition"])
    clients = partition.split(
        labels=data.train.y, num_clients=num_clients, natural=data.natural,
        generator=generator(seed, "partition"),
    )
    device = resolve_device(str(config["runner"]["device"]))
    if int(config["runner"]["torch_threads"]) > 0:  # per process; 0 keeps torch's default
        torch.set_num_threads(int(config["runner"]["torch_threads"]))
    # Initial weights depend on the seed only, so methods in one sweep start from the same model.
    model = build_model(
        instantiate(config["model"]), input_shape=tuple(data.train.x.shape[1:]),
        num_classes=data.num_classes, generator_seed=derive_seed(seed, "init"),
    )
    initial = state_of(model)
    warm_imports()
    local = LocalConfig(
        lr=float(config["lr"]), batch_size=int(config["batch_size"]), momentum=float(config["momentum"]),
        weight_decay=float(config["weight_decay"]), clip_norm=float(config["clip_norm"]),
        amp=bool(config["runner"]["amp"]),
    )
    return CellRuntime(
        config=config, data=data, clients=clients, model=model.to(device), initial_params=initial,
        strategy=instantiate(config["strategy"]), selector=instantiate(config["selection"]),
        local=local, device=device,
        faults=validate_faults(config["faults"], num_clients=num_clients),
        policy=aggregation_policy(config.get("aggregation"), clients_per_round=int(config["clients_per_round"])),
    )
