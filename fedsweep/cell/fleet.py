"""A cell's simulated fleet: which clients are online in a round, how fast each computes and
communicates (`systems`, fedsweep/systems/), and what that means for selection and local work."""

from functools import cached_property

import torch

from fedsweep.config.errors import ConfigError
from fedsweep.faults.base import FaultPlan
from fedsweep.selection.base import Population
from fedsweep.systems.base import Devices, SystemModel, affordable_work, work_samples


class Fleet:
    """The clients as devices: availability every round, simulated durations with a system model."""

    def __init__(
        self,
        *,
        seed: int,
        num_samples: torch.Tensor,
        faults: FaultPlan,
        systems: SystemModel | None,
        model_bytes: int,
        full_work: int,
        steps_batch_size: int | None,
    ) -> None:
        self.seed, self.num_samples, self.faults, self.systems = seed, num_samples, faults, systems
        self.model_bytes = model_bytes
        self.full_work = full_work  # local epochs, or local steps when `steps_batch_size` is set
        self.steps_batch_size = steps_batch_size  # the batch size under `local_steps`; None for epochs

    @property
    def num_clients(self) -> int:
        return int(self.num_samples.numel())

    @property
    def deadline_s(self) -> float | None:
        return None if self.systems is None else self.systems.deadline_s

    @cached_property
    def devices(self) -> Devices | None:
        """The fleet's speeds and bandwidths (fedsweep/systems/), drawn once; None without a model."""
        if self.systems is None:
            return None
        return self.systems.devices(seed=self.seed, num_clients=self.num_clients)

    def work_samples(self, work: int | torch.Tensor, clients: torch.Tensor | None = None) -> torch.Tensor:
        """int64 [num_clients], or [len(clients)] for those ids: samples `work` local epochs (or steps,
        with `local_steps`) pass through."""
        sizes = self.num_samples if clients is None else self.num_samples[clients]
        if self.steps_batch_size is None:
            return work_samples(sizes, epochs=work)
        return work_samples(sizes, steps=work, batch_size=self.steps_batch_size)

    @cached_property
    def expected_seconds(self) -> torch.Tensor | None:
        """float64 [num_clients]: each client's simulated round with its full local work."""
        if self.devices is None:
            return None
        return self.devices.seconds(self.work_samples(self.full_work), self.model_bytes)

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
        d, deadline = self.devices, self.deadline_s
        if d is None or deadline is None:
            return None
        down, up = self.model_bytes / float(d.down_bps[client]), self.model_bytes / float(d.up_bps[client])
        budget = (deadline - down - up) * float(d.speed[client])
        return affordable_work(
            budget, num_samples=int(self.num_samples[client]), batch_size=self.steps_batch_size
        )

    def population(self, round: int) -> Population:
        """What selection knows of every client in `round` (fedsweep/selection/base.py)."""
        return Population(
            num_samples=self.num_samples, expected_seconds=self.expected_seconds, deadline_s=self.deadline_s
        )

    def available(self, round: int) -> torch.Tensor:
        """The clients selection may pick in `round`, those the faults and the system model leave online:
        int64 ids in increasing order (fedsweep/selection/base.py), one tensor operation, no Python list."""
        online = self.faults.online(seed=self.seed, round=round, num_clients=self.num_clients)
        if self.systems is not None:
            online &= self.systems.available(seed=self.seed, round=round, num_clients=self.num_clients)
        return torch.nonzero(online).flatten()

    def check_deadline(self) -> None:
        """ConfigError when no client could ever meet `systems.deadline_s` (every round would be empty)."""
        if self.expected_seconds is None or self.deadline_s is None:
            return
        fastest = float(self.expected_seconds.min()) if self.num_clients else 0.0
        if fastest > self.deadline_s:
            message = (
                f"systems.deadline_s={self.deadline_s:g} is shorter than every client's simulated "
                f"round (the fastest takes {fastest:.3g} s): no client could ever be trained"
            )
            raise ConfigError(message, key="systems.deadline_s")
