"""When clients are online: `Always`, or on/off periods.

`OnOff`: each client is online for `on_rounds` rounds, then offline for `off_rounds`,
over and over, starting at a seeded random phase of its cycle, so that in every round about
on_rounds / (on_rounds + off_rounds) of the fleet is online and who is online changes in blocks.

A deterministic stand-in for the diurnal, charging-driven availability measured on smartphones
(Yang et al., "Characterizing Impacts of Heterogeneity in Federated Learning upon Large-Scale
Smartphone Data", WWW 2021, https://arxiv.org/abs/2006.06983, §4: devices train when idle, charging
and on Wi-Fi; FedScale replays such traces). The phases are drawn once, from
generator(seed, "systems", "availability"), so a round's online set is a pure function of
(seed, round) and costs one vectorised modulo over the fleet.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from fedsweep.rng import generator
from fedsweep.systems.base import SystemsConfigError


class Availability(ABC):
    """Who of the fleet is online in a round, as a pure function of (seed, round)."""

    @abstractmethod
    def online(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        """bool [num_clients]: who is online in `round` (1-based)."""


@dataclass(frozen=True)
class Always(Availability):
    """Every client, every round."""

    def online(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        return torch.ones(num_clients, dtype=torch.bool)


@dataclass(frozen=True, kw_only=True)
class OnOff(Availability):
    """Online `on_rounds` rounds, offline `off_rounds`, per client from a random phase."""

    on_rounds: int
    off_rounds: int

    def __post_init__(self) -> None:
        for name, low in (("on_rounds", 1), ("off_rounds", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SystemsConfigError(
                    type(self).__name__, name, f"must be an integer >= {low}, got {value!r}"
                )

    def online(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        """Client c is online when (phase_c + round) mod (on + off) < on."""
        period = self.on_rounds + self.off_rounds
        phase = torch.randint(0, period, (num_clients,), generator=generator(seed, "systems", "availability"))
        return (phase + round) % period < self.on_rounds
