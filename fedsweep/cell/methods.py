"""A cell's methods: the model, the strategy, the selector, the faults, the aggregation policy and the
client optimiser, on the cell's device."""

import copy
import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

from fedsweep.cell.data import CellData
from fedsweep.config.plugins import build
from fedsweep.config.schema import CellSettings
from fedsweep.faults.base import FaultPlan, validate_faults
from fedsweep.models.init import build_model
from fedsweep.rng import derive_seed
from fedsweep.rounds.policy import AggregationPolicy, aggregation_policy
from fedsweep.schedule import lr_at
from fedsweep.selection.base import Selector
from fedsweep.strategies.base import Strategy
from fedsweep.train import LocalConfig
from fedsweep.weights import Params, state_of


@dataclass(frozen=True, kw_only=True, eq=False)
class CellMethods:
    """What trains and decides in a cell; one instance per cell per process."""

    model: nn.Module  # the template, on `device`; training uses `thread_model()`
    initial_params: Params
    strategy: Strategy
    selector: Selector
    faults: FaultPlan
    policy: AggregationPolicy
    local: LocalConfig  # the client optimiser at the cell's base lr (`local_at` applies the schedule)
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    device: torch.device = torch.device("cpu")
    _per_thread: threading.local = field(default_factory=threading.local, repr=False)

    @cached_property
    def model_bytes(self) -> int:
        """Bytes of one copy of the model's state dict: what a client downloads and uploads."""
        return sum(t.numel() * t.element_size() for t in self.initial_params.values())

    def local_at(self, round: int) -> LocalConfig:
        """The client optimiser's settings in round `round`: the lr under `lr_schedule`."""
        lr = lr_at(self.local.lr, round=round, milestones=list(self.lr_milestones), gamma=self.lr_gamma)
        return self.local if lr == self.local.lr else dataclasses.replace(self.local, lr=lr)

    def thread_model(self) -> nn.Module:
        """The model instance this thread trains in: one per worker thread, reused for every client."""
        model: nn.Module | None = getattr(self._per_thread, "model", None)
        if model is None:
            model = self._per_thread.model = copy.deepcopy(self.model)
        return model


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; `cpu`/`cuda`/`cuda:1` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def may_batch(batch_clients: str | int, device: torch.device) -> bool:
    """Whether a cell with `runner.batch_clients` on `device` may train clients batched: `off` never,
    `auto` on CUDA only, `N` always (whether its model and strategy can: fedsweep/rounds/batch.py)."""
    return batch_clients != "off" and not (batch_clients == "auto" and device.type != "cuda")


def warm_imports(*, batched: bool) -> None:
    """Import torch._dynamo now if clients may train batched: torch.func's `grad` imports it (~1.1 s)
    at its first call. One-by-one training never does (fedsweep/train.py's LocalSGD).

    Done on the thread that builds a cell, it keeps that import out of worker threads, where a task
    timeout (an exception raised asynchronously in the thread) could interrupt it and leave the
    import lock held forever; done before worker processes fork, they inherit it.
    """
    if batched:
        import torch._dynamo  # noqa: F401, PLC0415 - only where batched training will need it


def build_methods(config: Mapping[str, Any], settings: CellSettings, data: CellData) -> CellMethods:
    """The cell's methods from its resolved config (the plug-ins are checked as `build` makes them)."""
    knobs, runner = settings.knobs, settings.runner
    device = resolve_device(runner.device)
    # Initial weights depend on the seed only, so methods in one sweep start from the same model.
    model = build_model(
        build(config["model"], key="model"),
        input_shape=tuple(data.data.train.x.shape[1:]),
        num_classes=data.data.num_classes,
        generator_seed=derive_seed(knobs.seed, "init"),
    )
    initial = state_of(model)
    warm_imports(batched=may_batch(runner.batch_clients, device))
    local = LocalConfig(
        lr=knobs.lr,
        batch_size=knobs.batch_size,
        momentum=knobs.momentum,
        weight_decay=knobs.weight_decay,
        clip_norm=knobs.clip_norm,
        amp=runner.amp,
        amp_dtype=runner.amp_dtype,
    )
    strategy = build(config["strategy"], key="strategy")
    policy = aggregation_policy(config.get("aggregation"), clients_per_round=knobs.clients_per_round)
    return CellMethods(
        model=model.to(device),
        initial_params=initial,
        strategy=strategy,
        selector=build(config["selection"], key="selection"),
        faults=validate_faults(config["faults"], num_clients=knobs.num_clients),
        policy=policy.for_strategy(strategy.partial_work),
        local=local,
        lr_milestones=tuple(knobs.lr_schedule.milestones),
        lr_gamma=knobs.lr_schedule.gamma,
        device=device,
    )
