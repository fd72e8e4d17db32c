"""Distributions of a positive per-client quantity (compute speed, bandwidth), each sampled in one
vectorised call from a seeded generator (fedsweep/systems/base.py).

Device fleets are heavy-tailed: FedScale (Lai et al., "FedScale: Benchmarking Model and System
Performance of Federated Learning at Scale", ICML 2022, https://arxiv.org/abs/2105.11367, §3 and
Fig. 3) and Oort (Lai et al., OSDI 2021, https://arxiv.org/abs/2010.06081, §7.1) take compute speeds
from AI Benchmark and network throughput from MobiPerf measurements, both spread over orders of
magnitude with long tails. `LogNormal` with a large `sigma` and `Pareto` with a small `shape` give
such tails; `Constant` and `Uniform` give controlled cases for tests and ablations.
"""

from dataclasses import dataclass

import torch

from fedsweep.systems.base import Distribution, SystemsConfigError, number


@dataclass(frozen=True, kw_only=True)
class Constant(Distribution):
    """Every client has `value`."""

    value: float

    def __post_init__(self) -> None:
        number(self, "value")

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.full((n,), self.value, dtype=torch.float64)


@dataclass(frozen=True, kw_only=True)
class Uniform(Distribution):
    """Uniform on [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        number(self, "low")
        if number(self, "high") < self.low:
            raise SystemsConfigError(
                type(self).__name__, "high", f"must be >= low ({self.low:g}), got {self.high:g}"
            )

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.low + (self.high - self.low) * torch.rand(n, generator=generator, dtype=torch.float64)


@dataclass(frozen=True, kw_only=True)
class LogNormal(Distribution):
    """median · exp(sigma · Z), Z standard normal: the median is `median`; sigma >= 1.5 is heavy-tailed."""

    median: float
    sigma: float

    def __post_init__(self) -> None:
        number(self, "median")
        number(self, "sigma", strict=False)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.median * torch.exp(self.sigma * torch.randn(n, generator=generator, dtype=torch.float64))


@dataclass(frozen=True, kw_only=True)
class Pareto(Distribution):
    """Pareto type I: P(X > x) = (scale / x)^shape for x >= scale (inverse transform of a uniform);
    the mean is infinite for shape <= 1, the variance for shape <= 2."""

    scale: float
    shape: float

    def __post_init__(self) -> None:
        number(self, "scale")
        number(self, "shape")

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        u = 1.0 - torch.rand(n, generator=generator, dtype=torch.float64)  # in (0, 1]: no division by 0
        return self.scale * u.pow(-1.0 / self.shape)
