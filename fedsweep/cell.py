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
from functools import lru_cache
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from fedsweep.data.base import LoadedData
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


@lru_cache(maxsize=2)
def _load_data(dataset_json: str, num_clients: int, seed: int) -> LoadedData:
    dataset = instantiate(json.loads(dataset_json))
    return dataset.load(num_clients=num_clients, seed=seed)


def load_data(config: Mapping[str, Any]) -> LoadedData:
    """The cell's dataset, loaded once per process for identical dataset configs."""
    return _load_data(json.dumps(config["dataset"], sort_keys=True), config["num_clients"], config["seed"])


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
    # The first optimiser construction imports torch._dynamo lazily; doing it here, on the calling
    # thread, keeps that import out of worker threads, where a task timeout (an exception raised
    # asynchronously in the thread) could interrupt it and leave the import lock held forever.
    torch.optim.SGD(model.parameters(), lr=1.0)
    local = LocalConfig(
        lr=float(config["lr"]), batch_size=int(config["batch_size"]), momentum=float(config["momentum"]),
        weight_decay=float(config["weight_decay"]), clip_norm=float(config["clip_norm"]),
    )
    return CellRuntime(
        config=config, data=data, clients=clients, model=model.to(device), initial_params=initial,
        strategy=instantiate(config["strategy"]), selector=instantiate(config["selection"]),
        local=local, device=device,
        faults=validate_faults(config["faults"], num_clients=num_clients),
        policy=aggregation_policy(config.get("aggregation"), clients_per_round=int(config["clients_per_round"])),
    )
