"""The fault-injection contract: seeded, pure, composable fault models for simulated clients.

A fault model (`conf/faults/*.yaml`) decides what goes wrong with a selected client in a round: it
raises before a local epoch (a transient error, a permanent failure, a node that is down, a
simulated out-of-memory), sleeps (a hang past the task timeout, a slow straggler), asks for fewer
local epochs (a straggler's partial work, FedProx's systems heterogeneity) or changes the update a
client sends (NaN/Inf, a scaled or sign-flipped model). The round's library code calls the hooks
(`online` and `epochs_to_run` when a round is planned, fedsweep/cell/fleet.py and
fedsweep/rounds/work.py; `before_epoch` and `after_training` inside a client's job, fedsweep/rounds/work.py);
a fault never calls back.

Rules:

- **Pure.** A fault object holds only its hyper-parameters (keyword-only constructor arguments from
  the yaml; frozen dataclasses). Every decision is a function of its coordinates: the seed, the
  round, the client and, for faults of one try, the local epoch and the attempt. Random decisions
  draw from `fedsweep.rng.generator(seed, "fault", KIND, ...coordinates)`, never from global RNG
  state, so a retry, a resumed run or another method of the same sweep sees exactly the same
  faults. Two faults of the same kind in one plan share their draws (give them different `clients`
  rather than expecting independent coins).
- **Coordinates.** `ClientRound` (seed, round, client, local_epochs) names a client's round (and
  `affordable`: what its simulated device can do by a simulated deadline, fedsweep/systems/);
  `ClientCtx` adds `epoch` (0-based local epoch) and `attempt` (1 on the first try: Prefect's
  `task_run.run_count`). Decisions that must hold for the whole round (who is a straggler, how many
  epochs it runs, who is malicious) use `ClientRound` only; decisions of one try (transient error,
  hang, OOM) also use epoch and attempt, so that a retry is an independent draw.
- **Hooks**, in the order the loop calls them (all default to "no fault"):
  `online(seed=, round=, num_clients=)` before selection, a bool tensor over the whole fleet (a
  scheduled outage hides a client from selection), vectorised so that a million clients cost one
  tensor operation per round, not a Python loop (`available(seed=, round=, client=)` reads one
  client of it); `epochs_to_run(round_ctx)` once per selected client (in [1, local_epochs]; with the
  `local_steps` knob, `local_epochs` is τ and the count is in steps);
  `before_epoch(ctx)` at the start of every client-epoch attempt, inside the task, so that what it
  raises is retried by Prefect and what it sleeps is cut by the task timeout;
  `after_training(round_ctx, params, global_params)` once on the client's final parameters, before
  the update is validated and aggregated (it returns a new dict and never edits its inputs).
- **Batched clients** (`runner.batch_clients`, fedsweep/rounds/batch.py) train many clients in one
  job, where one client's sleep would stall the others: there the round calls
  `before_batched_epoch(ctx)` instead of `before_epoch`, which raises as `before_epoch` would and
  returns the seconds it would sleep instead of sleeping. The batch then leaves out a client whose
  sleep passes the task timeout (a retryable timeout) or the round's deadline (cut), and waits for
  the longest remaining sleep once. The default calls `before_epoch` (a fault that does not say how
  long it sleeps sleeps there, holding up its batch); `Hang` and `Stragglers` say.
- **Failures are exceptions of a known kind** (fedsweep/failures.py): `TransientFailure` and
  `SimulatedOOM` are worth a retry; `PermanentFailure` (and its `NodeDown`) is not. A NaN/Inf
  update is no exception: the client's last epoch marks its reference invalid and the round reports
  `invalid_update`.
- **Sleeps are interruptible.** A hang sleeps in steps of `HANG_STEP_S` seconds, so a timeout that
  raises into the thread running it (Prefect's `timeout_seconds`, jobs run in this thread) ends it
  within one step; a job in a worker process is ended by killing and replacing that worker.
- **Composition.** `FaultPlan(faults=[...])` is itself a `Fault`: a client is online only if
  every fault says so; `before_epoch` runs the faults in list order (the first to raise wins);
  `epochs_to_run` is the smallest; `after_training` applies the faults in list order.
  `FaultPlan()` injects nothing (`conf/faults/none.yaml`).
- **Validation.** Constructors reject impossible values with `FaultConfigError` (a `ValueError`
  naming the field); `validate_faults(cfg, num_clients=...)` builds a fault model from its config
  with the plug-in builder (`fedsweep.config.plugins.build`), which names the full key, e.g.
  `faults.faults[1].p must be in [0, 1], got 1.5`, and checks client ids against num_clients.
  `Fault.check_config` is the same check as the config validator's plug-in hook. Plan yamls set
  `_recursive_: false` so that Hydra hands `FaultPlan` the raw specs and it builds them itself,
  naming the list index in an error (Hydra would otherwise wrap the child's error).
"""

import math
import time
from abc import ABC
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fedsweep.config.errors import ConfigError
from fedsweep.config.plugins import build
from fedsweep.rng import generator
from fedsweep.weights import Params

HANG_STEP_S = 0.05  # the longest a timeout waits for a sleeping fault to notice it


class FaultConfigError(ValueError):
    """An impossible fault hyper-parameter; `field` names it, `reason` says why."""

    def __init__(self, owner: str, field: str, reason: str) -> None:
        super().__init__(f"{owner}: {field} {reason}")
        self.owner, self.field, self.reason = owner, field, reason


@dataclass(frozen=True, kw_only=True)
class ClientRound:
    """A selected client's round: the coordinates of round-wide fault decisions."""

    seed: int
    round: int
    client: int
    local_epochs: int
    # The local epochs (or steps) the client's simulated device completes by the simulated deadline
    # (conf/systems/, `systems.deadline_s`); None without one. Stragglers may take their work from it.
    affordable: int | None = None

    def at(self, *, epoch: int, attempt: int = 1) -> "ClientCtx":
        """The context of one attempt at one local epoch of this round."""
        return ClientCtx(
            seed=self.seed,
            round=self.round,
            client=self.client,
            local_epochs=self.local_epochs,
            affordable=self.affordable,
            epoch=epoch,
            attempt=attempt,
        )


@dataclass(frozen=True, kw_only=True)
class ClientCtx(ClientRound):
    """One attempt (1-based, Prefect's run_count) at one local epoch (0-based) of a client's round."""

    epoch: int = 0
    attempt: int = 1


def uniform(*coords: object) -> float:
    """A float in [0, 1) that depends only on the coordinates."""
    return float(torch.rand((), generator=generator(*coords), dtype=torch.float64))


def bernoulli(p: float, *coords: object) -> bool:
    """True with probability `p`, decided by the coordinates alone."""
    return p >= 1.0 or (p > 0.0 and uniform(*coords) < p)


def targets(clients: tuple[int, ...] | None, client: int) -> bool:
    """Whether a fault restricted to `clients` (None = every client) applies to `client`."""
    return clients is None or client in clients


def interruptible_sleep(seconds: float, *, step: float = HANG_STEP_S) -> None:
    """Sleep `seconds` in steps of at most `step`, so an exception raised into the thread ends it."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(step, left))


def where(ctx: ClientRound) -> str:
    """`round 3, client 7[, epoch 0, attempt 2]`: the coordinates for a failure message."""
    text = f"round {ctx.round}, client {ctx.client}"
    return text + (f", epoch {ctx.epoch}, attempt {ctx.attempt}" if isinstance(ctx, ClientCtx) else "")


def set_field(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass in `__post_init__`."""
    object.__setattr__(obj, name, value)


def probability(obj: object, name: str) -> float:
    """The field `name` of `obj` as a float in [0, 1], or FaultConfigError."""
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise FaultConfigError(type(obj).__name__, name, f"must be in [0, 1], got {value!r}")
    return float(value)


def nonnegative(obj: object, name: str) -> float:
    """The field `name` of `obj` as a finite float >= 0, or FaultConfigError."""
    value = getattr(obj, name)
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0:
        raise FaultConfigError(type(obj).__name__, name, f"must be a number >= 0, got {value!r}")
    return float(value)


def client_ids(obj: object, name: str) -> tuple[int, ...] | None:
    """The field `name` of `obj` as a sorted tuple of distinct ids >= 0 (None stays None)."""
    value = getattr(obj, name)
    if value is None:
        return None
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    if items is None or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in items):
        raise FaultConfigError(type(obj).__name__, name, f"must be a list of client ids >= 0, got {value!r}")
    return tuple(sorted(set(items)))


class Fault(ABC):
    """Base class of fault models; every hook defaults to "no fault"."""

    @classmethod
    def check_config(cls, config: Mapping[str, Any], *, key: str) -> None:
        """The config validator's cross-group hook (fedsweep/config/plugins.py): keys and client ids."""
        validate_faults(config[key], num_clients=config["num_clients"], key=key)

    def online(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        """bool [num_clients]: who can be selected in `round` (False hides a client from selection)."""
        return torch.ones(num_clients, dtype=torch.bool)

    def available(self, *, seed: int, round: int, client: int) -> bool:
        """Whether `client` can be selected in `round`: its entry of `online`."""
        return bool(self.online(seed=seed, round=round, num_clients=client + 1)[client])

    def before_epoch(self, ctx: ClientCtx) -> None:
        """Called at the start of every client-epoch attempt; may raise or sleep."""

    def before_batched_epoch(self, ctx: ClientCtx) -> float:
        """`before_epoch` for a client trained in a batch: raise as it would, and return the seconds
        it would sleep instead of sleeping (default: call `before_epoch`, return 0)."""
        self.before_epoch(ctx)
        return 0.0

    def epochs_to_run(self, ctx: ClientRound) -> int:
        """How many of its `local_epochs` the client runs this round (in [1, local_epochs])."""
        return ctx.local_epochs

    def after_training(self, ctx: ClientRound, params: Params, global_params: Params) -> Params:
        """The update the client sends, given its trained parameters (a new dict; inputs untouched)."""
        return params


FAULT_MODEL = (Fault, "a fault model (a Fault subclass)")  # what `build` must find at a faults `_target_`


@dataclass(frozen=True, kw_only=True)
class FaultPlan(Fault):
    """A list of faults applied together, in order; `FaultPlan()` injects nothing."""

    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        faults = []
        for i, given in enumerate(self.faults):
            fault: Any = given
            if isinstance(given, Mapping) and "_target_" in given:
                # A raw spec (`_recursive_: false` in the yaml): built here, so that an error names
                # its place in the list, `faults[1].p must be in [0, 1]`.
                fault = build(given, key=f"faults[{i}]", expect=FAULT_MODEL)
            elif isinstance(given, DictConfig):
                # Recursive instantiation hands a list of built dataclasses back as structured
                # DictConfigs (unless `_convert_: all`); turn them back into the objects.
                fault = OmegaConf.to_object(given)
            if not isinstance(fault, Fault):
                got = type(fault).__name__
                raise FaultConfigError("FaultPlan", f"faults[{i}]", f"is not a Fault, got {got}")
            faults.append(fault)
        set_field(self, "faults", tuple(faults))

    def online(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        """Online only if every fault says so."""
        mask = torch.ones(num_clients, dtype=torch.bool)
        for fault in self.faults:
            mask &= fault.online(seed=seed, round=round, num_clients=num_clients)
        return mask

    def available_clients(self, *, seed: int, round: int, num_clients: int) -> list[int]:
        """The ids in range(num_clients) that selection may pick in `round`."""
        return torch.nonzero(self.online(seed=seed, round=round, num_clients=num_clients)).flatten().tolist()

    def before_epoch(self, ctx: ClientCtx) -> None:
        """Each fault in order; the first to raise wins."""
        for fault in self.faults:
            fault.before_epoch(ctx)

    def before_batched_epoch(self, ctx: ClientCtx) -> float:
        """Each fault in order (the first to raise wins); the seconds they would sleep, added."""
        return sum((fault.before_batched_epoch(ctx) for fault in self.faults), 0.0)

    def epochs_to_run(self, ctx: ClientRound) -> int:
        """The fewest epochs any fault allows."""
        return min((f.epochs_to_run(ctx) for f in self.faults), default=ctx.local_epochs)

    def after_training(self, ctx: ClientRound, params: Params, global_params: Params) -> Params:
        """Each fault's transformation in order."""
        for fault in self.faults:
            params = fault.after_training(ctx, params, global_params)
        return params


def as_plan(fault: Fault) -> FaultPlan:
    """A single fault wrapped in a plan (a plan is returned as is)."""
    return fault if isinstance(fault, FaultPlan) else FaultPlan(faults=(fault,))


def validate_faults(cfg: Any, *, num_clients: int, key: str = "faults") -> FaultPlan:
    """Build the fault model a `faults` config describes, or a ConfigError (a ValueError) naming the key.

    Accepts a mapping with `_target_` (a single fault or a `FaultPlan` of them), built by the one
    plug-in builder (fedsweep/config/plugins.py), an empty mapping (no faults) or a `Fault`; client
    ids must be < num_clients. Returns a `FaultPlan`, equal to what Hydra's `instantiate` builds.
    """
    if isinstance(cfg, Fault):
        fault = cfg
    elif isinstance(cfg, Mapping) and not cfg:
        return FaultPlan()
    else:
        fault = build(cfg, key=key, expect=FAULT_MODEL)
    _check_clients(fault, num_clients=num_clients, key=key)
    return as_plan(fault)


def _check_clients(fault: Fault, *, num_clients: int, key: str) -> None:
    for c in getattr(fault, "clients", None) or ():
        if c >= num_clients:
            message = f"{key}.clients: client {c} does not exist (num_clients={num_clients})"
            raise ConfigError(message, key=f"{key}.clients")
    for i, child in enumerate(fault.faults if isinstance(fault, FaultPlan) else ()):
        _check_clients(child, num_clients=num_clients, key=f"{key}.faults[{i}]")
