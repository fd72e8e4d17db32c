"""The system-model contract: how fast each simulated client computes and communicates, and when it
is online, so that a round has a simulated duration (FedScale's and Oort's simulated clock).

A system model (`conf/systems/*.yaml`; `systems: none`, the default, is no model at all) describes a
fleet of devices. Rules:

- **Per client, drawn once.** `devices(seed=, num_clients=)` returns a `Devices`: one float64
  tensor per quantity, indexed by client id: compute speed in training samples per second, download
  and upload bandwidth in bytes per second. Every value is drawn from
  `fedsweep.rng.generator(seed, "systems", QUANTITY)` by a `Distribution`, vectorised, so a million
  clients cost three 8 MB tensors and milliseconds, and a resumed run (or a worker process) draws
  exactly the same fleet. The fleet does not change from round to round.
- **Availability.** `available(seed=, round=, num_clients=)` is a bool tensor: False hides the client
  from selection in that round, as a scheduled outage (fedsweep/faults/schedule.py) does; the
  runtime selects among the clients that both the faults and the system model leave available.
- **Duration.** A client's simulated round is download, local work, upload, one after the other:

      seconds = model_bytes / down_bps + work_samples / speed + model_bytes / up_bps

  `model_bytes` is the size of the model's state dict (every tensor's numel × element size);
  `work_samples` the samples its local work passes through (`work_samples`): E × n for E local
  epochs, or for τ local steps of batch size b, whole passes over its n samples then the batches of
  the last partial pass (exactly the batches fedsweep/schedule.py runs). FedScale
  (https://github.com/SymbioticLab/FedScale, client `getCompletionTime`) multiplies compute by an
  "augmentation factor" of 3 and uses one bandwidth for both directions; here the speed is in
  samples per second as measured (fold any factor into it) and down and up are separate, as
  mobile links are asymmetric.
- **Deadline and over-selection** (`deadline_s`, `over_select`), the round's rules on the clock
  (fedsweep/systems/clock.py): a client whose simulated duration exceeds the deadline is not
  trained at all (in simulation that is known beforehand: the compute is saved) and fails with kind
  `deadline`; with over-selection the selector is asked for ceil(k · (1 + over_select)) clients, the
  first k to finish by simulated duration are trained and the others are dropped untrained
  (`clients_late`), as production FL does (Bonawitz et al., "Towards Federated Learning at Scale",
  MLSys 2019, §2: the server selects ~130 % of the target and discards the stragglers).

Implementations are frozen dataclasses with keyword-only fields (their yaml's keys); constructors
refuse impossible values with `SystemsConfigError` (field + reason), which the plug-in builder turns
into one line naming the key (`systems.speed.sigma must be >= 0, got -1`).
"""

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


class SystemsConfigError(ValueError):
    """An impossible system-model parameter; `field` names it, `reason` says why."""

    def __init__(self, owner: str, field: str, reason: str) -> None:
        super().__init__(f"{owner}: {field} {reason}")
        self.owner, self.field, self.reason = owner, field, reason


def number(obj: object, name: str, *, low: float = 0.0, strict: bool = True) -> float:
    """The field `name` of `obj` as a finite float > low (>= low when not `strict`), or SystemsConfigError."""
    value = getattr(obj, name)
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or (value <= low if strict else value < low):
        raise SystemsConfigError(
            type(obj).__name__, name, f"must be a number {'>' if strict else '>='} {low:g}, got {value!r}"
        )
    object.__setattr__(obj, name, float(value))
    return float(value)


class Distribution(ABC):
    """A positive quantity's distribution across clients (speeds, bandwidths)."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """float64 [n], every value > 0, drawn from `generator` alone in one vectorised call."""


@dataclass(frozen=True, kw_only=True)
class Devices:
    """The fleet: float64 tensors [num_clients] indexed by client id."""

    speed: torch.Tensor  # training samples per second
    down_bps: torch.Tensor  # bytes per second, server -> client
    up_bps: torch.Tensor  # bytes per second, client -> server

    def of(self, clients: torch.Tensor) -> "Devices":
        """The fleet of `clients` (int64 ids) alone, in their order."""
        return Devices(
            speed=self.speed[clients], down_bps=self.down_bps[clients], up_bps=self.up_bps[clients]
        )

    def seconds(self, work_samples: torch.Tensor, model_bytes: int) -> torch.Tensor:
        """float64 [num_clients]: download, then `work_samples` of local work, then upload."""
        return model_bytes / self.down_bps + work_samples.double() / self.speed + model_bytes / self.up_bps


def work_samples(
    num_samples: torch.Tensor,
    *,
    epochs: int | torch.Tensor | None = None,
    steps: int | torch.Tensor | None = None,
    batch_size: int = 1,
) -> torch.Tensor:
    """int64 [clients]: samples a client's local work passes through: `epochs` × n, or for `steps`
    mini-batches of `batch_size`, whole passes (B = ceil(n / b) batches each) then the rest."""
    n = num_samples.long()
    if steps is None:
        return n * torch.as_tensor(epochs, dtype=torch.int64)
    steps = torch.as_tensor(steps, dtype=torch.int64)
    per_pass = torch.div(n + batch_size - 1, batch_size, rounding_mode="floor").clamp(min=1)
    return torch.div(steps, per_pass, rounding_mode="floor") * n + torch.minimum(
        (steps % per_pass) * batch_size, n
    )


def affordable_work(budget_samples: float, *, num_samples: int, batch_size: int | None) -> int:
    """The most local epochs (`batch_size` None) or steps whose `work_samples` fit in `budget_samples`
    (0 when not even one does; a client without data can do any amount: a large number)."""
    if budget_samples < 0:
        return 0
    if num_samples == 0:
        return 2**31
    passes, rest = divmod(budget_samples, num_samples)
    if batch_size is None:
        return int(passes)
    per_pass = -(-num_samples // batch_size)
    return int(passes) * per_pass + int(rest // batch_size)


@dataclass(frozen=True, kw_only=True)
class SystemModel(ABC):
    """Base class of system models; `deadline_s` and `over_select` are the round's rules on the clock."""

    deadline_s: float | None = None  # simulated seconds; None: a round waits for its slowest client
    over_select: float = 0.0  # select ceil(k · (1 + over_select)), train the first k to finish

    def __post_init__(self) -> None:
        if self.deadline_s is not None:
            number(self, "deadline_s")
        number(self, "over_select", strict=False)

    @abstractmethod
    def devices(self, *, seed: int, num_clients: int) -> Devices:
        """Every client's speed and bandwidths, drawn from generator(seed, "systems", ...)."""

    def available(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        """bool [num_clients]: who is online in `round`; default: everyone."""
        return torch.ones(num_clients, dtype=torch.bool)

    def to_select(self, k: int) -> int:
        """How many clients to ask the selector for when k updates are wanted."""
        return math.ceil(round(k * (1.0 + self.over_select), 9))


SYSTEM_MODEL = (
    SystemModel,
    "a system model (a SystemModel subclass)",
)  # what `build` must find at `_target_`
