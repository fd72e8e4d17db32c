"""A cell's runtime and stores: the dataset, clients, model and methods, built once per process.

Everything here is derived from the resolved config alone (`cell.json` in the cell's folder), so a
worker process, a retry or a resumed run rebuilds exactly the same objects. The dataset is cached
per process by the config that defines it: cells that differ only in method share one copy of the
data in memory. Jobs receive only the cell's folder and small references, and call `cell_env`.
"""

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import torch
from torch import nn

from fedsweep.checkpoint.blobs import BlobStore
from fedsweep.checkpoint.clients import ClientStateStore
from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.config.errors import ConfigError
from fedsweep.config.plugins import build
from fedsweep.config.schema import CellSettings, validate
from fedsweep.data.base import LoadedData
from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition.natural import Natural
from fedsweep.faults.base import FaultPlan, validate_faults
from fedsweep.models.init import build_model
from fedsweep.policy import AggregationPolicy, aggregation_policy
from fedsweep.rng import derive_seed, generator
from fedsweep.selection.base import Population, Selector
from fedsweep.strategies.base import Strategy
from fedsweep.systems.base import SYSTEM_MODEL, Devices, SystemModel, affordable_work, work_samples
from fedsweep.train import LocalConfig
from fedsweep.weights import Params, state_of


@dataclass(frozen=True, kw_only=True)
class CellRuntime:
    """What a cell's tasks need; one instance per cell per process."""

    config: dict[str, Any]
    settings: CellSettings  # `config`, validated and typed: what the code reads
    data: LoadedData
    clients: ClientIndex  # client c's sample indices: clients[c] (fedsweep/data/clients.py)
    model: nn.Module
    initial_params: Params
    strategy: Strategy
    selector: Selector
    local: LocalConfig
    device: torch.device
    faults: FaultPlan
    policy: AggregationPolicy
    # The client of each test sample where clients have test samples of their own (the dataset's
    # natural split as the partition): the evaluation then reports accuracy across clients too.
    test_owner: torch.Tensor | None = None
    systems: SystemModel | None = None  # conf/systems/: None runs without a simulated clock
    _per_thread: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    @cached_property
    def num_samples(self) -> torch.Tensor:
        """int64 [num_clients]: each client's number of training samples."""
        return self.clients.sizes

    @cached_property
    def model_bytes(self) -> int:
        """Bytes of one copy of the model's state dict: what a client downloads and uploads."""
        return sum(t.numel() * t.element_size() for t in self.initial_params.values())

    @cached_property
    def devices(self) -> Devices | None:
        """The fleet's speeds and bandwidths (fedsweep/systems/), drawn once; None without a model."""
        if self.systems is None:
            return None
        return self.systems.devices(seed=self.settings.knobs.seed, num_clients=self.num_clients)

    def work_samples(self, work: int | torch.Tensor, clients: torch.Tensor | None = None) -> torch.Tensor:
        """int64 [num_clients], or [len(clients)] for those ids: samples `work` local epochs (or steps,
        with `local_steps`) pass through."""
        sizes = self.num_samples if clients is None else self.num_samples[clients]
        if self.settings.knobs.local_steps is None:
            return work_samples(sizes, epochs=work)
        return work_samples(sizes, steps=work, batch_size=self.local.batch_size)

    @cached_property
    def expected_seconds(self) -> torch.Tensor | None:
        """float64 [num_clients]: each client's simulated round with its full local work."""
        knobs = self.settings.knobs
        full = knobs.local_epochs if knobs.local_steps is None else knobs.local_steps
        if self.devices is None:
            return None
        return self.devices.seconds(self.work_samples(full), self.model_bytes)

    def client_seconds(self, work: dict[int, int]) -> dict[int, float]:
        """client -> its simulated round for `work` local epochs (or steps); {} without a model. Computed
        for those clients alone: O(len(work)), whatever the population."""
        if self.devices is None or not work:
            return {}
        ids = torch.tensor(sorted(work), dtype=torch.int64)
        planned = torch.tensor([work[c] for c in sorted(work)], dtype=torch.int64)
        seconds = self.devices.of(ids).seconds(self.work_samples(planned, ids), self.model_bytes)
        return dict(zip(ids.tolist(), seconds.tolist(), strict=True))

    def affordable_work(self, client: int) -> int | None:
        """The local epochs (or steps) `client` completes by `systems.deadline_s` (its transfers
        counted); None without a simulated deadline."""
        if self.devices is None or self.systems is None or self.systems.deadline_s is None:
            return None
        d = self.devices
        budget = (
            self.systems.deadline_s
            - self.model_bytes / float(d.down_bps[client])
            - self.model_bytes / float(d.up_bps[client])
        ) * float(d.speed[client])
        steps = self.settings.knobs.local_steps is not None
        return affordable_work(
            budget,
            num_samples=int(self.num_samples[client]),
            batch_size=self.local.batch_size if steps else None,
        )

    def population(self, round: int) -> Population:
        """What selection knows of every client in `round` (fedsweep/selection/base.py)."""
        deadline = None if self.systems is None else self.systems.deadline_s
        return Population(
            num_samples=self.num_samples, expected_seconds=self.expected_seconds, deadline_s=deadline
        )

    def available(self, round: int) -> torch.Tensor:
        """The clients selection may pick in `round`, those the faults and the system model leave online:
        int64 ids in increasing order (fedsweep/selection/base.py), one tensor operation, no Python list."""
        seed, n = self.settings.knobs.seed, self.num_clients
        online = self.faults.online(seed=seed, round=round, num_clients=n)
        if self.systems is not None:
            online &= self.systems.available(seed=seed, round=round, num_clients=n)
        return torch.nonzero(online).flatten()

    def check_deadline(self) -> None:
        """ConfigError when no client could ever meet `systems.deadline_s` (every round would be empty)."""
        if self.systems is None or self.systems.deadline_s is None:
            return
        fastest = float(self.expected_seconds.min()) if self.num_clients else 0.0
        if fastest > self.systems.deadline_s:
            message = (
                f"systems.deadline_s={self.systems.deadline_s:g} is shorter than every client's simulated "
                f"round (the fastest takes {fastest:.3g} s): no client could ever be trained"
            )
            raise ConfigError(message, key="systems.deadline_s")

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
        data = build(config["dataset"], key="dataset").load(
            num_clients=int(config["num_clients"]), seed=int(config["seed"])
        )
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
    settings = validate(config, plugins=False)  # the plug-ins are checked as `build` makes them
    knobs, runner = settings.knobs, settings.runner
    data = load_data(config)
    partition = build(config["partition"], key="partition")
    clients = partition.split(
        labels=data.train.y,
        num_clients=knobs.num_clients,
        natural=data.natural,
        generator=generator(knobs.seed, "partition"),
    )
    device = resolve_device(runner.device)
    # Initial weights depend on the seed only, so methods in one sweep start from the same model.
    model = build_model(
        build(config["model"], key="model"),
        input_shape=tuple(data.train.x.shape[1:]),
        num_classes=data.num_classes,
        generator_seed=derive_seed(knobs.seed, "init"),
    )
    initial = state_of(model)
    warm_imports()
    local = LocalConfig(
        lr=knobs.lr,
        batch_size=knobs.batch_size,
        momentum=knobs.momentum,
        weight_decay=knobs.weight_decay,
        clip_norm=knobs.clip_norm,
        amp=runner.amp,
    )
    runtime = CellRuntime(
        config=config,
        settings=settings,
        data=data,
        clients=clients,
        model=model.to(device),
        initial_params=initial,
        strategy=build(config["strategy"], key="strategy"),
        selector=build(config["selection"], key="selection"),
        local=local,
        device=device,
        faults=validate_faults(config["faults"], num_clients=knobs.num_clients),
        policy=aggregation_policy(config.get("aggregation"), clients_per_round=knobs.clients_per_round),
        test_owner=data.test_owner if isinstance(partition, Natural) else None,
        systems=build(config["systems"], key="systems", expect=SYSTEM_MODEL)
        if config.get("systems")
        else None,
    )
    runtime.check_deadline()
    return runtime


CONFIG_FILE = "cell.json"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class CellEnv:
    """A cell's runtime and where its state lives: round blobs, client states, checkpoints."""

    runtime: CellRuntime
    blobs: BlobStore
    client_states: ClientStateStore
    checkpoints: CheckpointStore
    key: str


def write_cell_config(cell_dir: str, *, key: str, name: str, config: dict) -> None:
    """Record the resolved config beside the cell's state (what every process rebuilds from)."""
    text = json.dumps({"key": key, "name": name, "config": config}, indent=1, sort_keys=True)
    open_storage(cell_dir).write(CONFIG_FILE, text.encode())


@lru_cache(maxsize=8)
def cell_env(cell_dir: str) -> CellEnv:
    """The cell's runtime and stores, built once per process from its `cell.json`."""
    record = json.loads(open_storage(cell_dir).read(CONFIG_FILE))
    runtime, root = build_runtime(record["config"]), cell_dir.rstrip("/")
    return CellEnv(
        runtime=runtime,
        blobs=BlobStore(storage=open_storage(f"{root}/work")),
        client_states=ClientStateStore(storage=open_storage(f"{root}/clients")),
        checkpoints=CheckpointStore(
            storage=open_storage(f"{root}/{CHECKPOINTS}"), keep=runtime.settings.checkpoint.keep
        ),
        key=record["key"],
    )


def committed_round(cell_dir: str) -> int:
    """The newest round whose checkpoint manifest and meta verify (0: none), read without building
    the cell or reading its tensors, and without writing anything."""
    store = CheckpointStore(storage=open_storage(f"{cell_dir.rstrip('/')}/{CHECKPOINTS}"))
    return max((int(meta.get("round", 0)) for meta in store.kept_metas()), default=0)


def verified_round(cell_dir: str) -> int:
    """The newest round whose checkpoint files all verify against their manifest (0: none): what a
    resume would start from, read without building the cell or parsing its tensors."""
    store = CheckpointStore(storage=open_storage(f"{cell_dir.rstrip('/')}/{CHECKPOINTS}"))
    return store.latest_verified()
