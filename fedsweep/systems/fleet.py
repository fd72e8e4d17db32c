"""A fleet of devices whose compute speed and down/up bandwidths are drawn per client from
configurable distributions (fedsweep/systems/distributions.py), optionally online in on/off periods
(fedsweep/systems/availability.py): the system model of FedScale's simulator
(https://github.com/SymbioticLab/FedScale, Lai et al. ICML 2022) and of Oort's evaluation
(Lai et al., OSDI 2021, §7.1), with parametric distributions standing in for their device traces.

Draws: speed from generator(seed, "systems", "speed"), download bandwidth from
(seed, "systems", "down"), upload from (seed, "systems", "up"); each quantity is independent of the
others, as in FedScale, where a client's compute and network profiles come from separate traces.
"""

from dataclasses import dataclass, field

import torch

from fedsweep.rng import generator
from fedsweep.systems.availability import Always, Availability
from fedsweep.systems.base import Devices, Distribution, SystemModel


@dataclass(frozen=True, kw_only=True)
class Fleet(SystemModel):
    """speed (samples/s), down_bps and up_bps (bytes/s) drawn per client; online as `availability` says."""

    speed: Distribution
    down_bps: Distribution
    up_bps: Distribution
    availability: Availability = field(default_factory=Always)

    def devices(self, *, seed: int, num_clients: int) -> Devices:
        """One vectorised draw per quantity, each from its own generator."""
        draws = {
            name: getattr(self, name).sample(num_clients, generator(seed, "systems", stream))
            for name, stream in (("speed", "speed"), ("down_bps", "down"), ("up_bps", "up"))
        }
        return Devices(**draws)

    def available(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        """Who `availability` says is online."""
        return self.availability.online(seed=seed, round=round, num_clients=num_clients)
