"""Aggregation maths as pure functions over `dict[str, Tensor]` (in the style of Flower's
`flwr.server.strategy.aggregate`), tested alone.

FedAvg's server step is a weighted mean of the clients' parameters, w = Σ_k n_k w_k / Σ_k n_k
(McMahan et al. 2017, https://arxiv.org/abs/1602.05629). `RunningMean` consumes one client at a
time, so memory stays O(model) however many clients report (as in pfl-research): only the float64
sums live, never the list of client updates.

Numerics:
- Sums accumulate in float64 and are cast back to each tensor's dtype once, at the end, so the
  result does not depend on rounding in float32 partial sums (and half-precision models do not
  overflow).
- Integer tensors (BatchNorm's `num_batches_tracked`) get the weighted mean rounded half to even;
  a count averaged over clients stays an integer of the same order. Booleans get the weighted
  majority (mean ≥ 0.5).
- The order of `add` calls fixes the float64 rounding; callers add clients in client-id order so
  that a resumed run aggregates bitwise the same.
"""

import torch

from fedsweep.weights import Params


class RunningMean:
    """A weighted mean of parameter dicts, accumulated one dict at a time in float64."""

    def __init__(self) -> None:
        self._sums: Params = {}
        self._total = 0.0
        self._count = 0

    @property
    def total_weight(self) -> float:
        """Sum of the weights added so far."""
        return self._total

    @property
    def count(self) -> int:
        """How many dicts were added."""
        return self._count

    def add(self, params: Params, weight: float) -> None:
        """Add `weight · params` to the running sums."""
        weight = float(weight)
        if not weight >= 0.0 or weight == float("inf"):  # also rejects NaN
            raise ValueError(f"RunningMean: weight must be finite and >= 0, got {weight}")
        if self._sums and params.keys() != self._sums.keys():
            missing = sorted(self._sums.keys() - params.keys())
            extra = sorted(params.keys() - self._sums.keys())
            raise KeyError(f"RunningMean: keys differ from the first dict (missing {missing}, extra {extra})")
        for name, value in params.items():
            term = value.detach().to(device="cpu", dtype=torch.float64) * weight
            if name not in self._sums:
                self._sums[name] = term
            elif self._sums[name].shape != term.shape:
                raise ValueError(
                    f"RunningMean: shape of {name!r} changed: {tuple(self._sums[name].shape)} "
                    f"then {tuple(term.shape)}"
                )
            else:
                self._sums[name] += term
        self._total += weight
        self._count += 1

    def result(self, like: Params) -> Params:
        """The weighted mean, with `like`'s keys, order, dtypes and devices."""
        if self._total <= 0.0:
            raise ValueError("RunningMean: no positive weight was added; the mean is undefined")
        if like.keys() != self._sums.keys():
            raise KeyError(f"RunningMean: `like` keys differ: {sorted(like.keys() ^ self._sums.keys())}")
        return {name: _cast(self._sums[name] / self._total, ref) for name, ref in like.items()}

    def mean64(self) -> Params:
        """The weighted mean in float64 (server optimisers take their step from it before casting)."""
        if self._total <= 0.0:
            raise ValueError("RunningMean: no positive weight was added; the mean is undefined")
        return {name: total / self._total for name, total in self._sums.items()}


def cast_like(value: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`value` (float64) converted to `ref`'s dtype and device: integers rounded half to even,
    booleans by majority, as FedAvg treats them (BatchNorm's `num_batches_tracked`)."""
    return _cast(value, ref)


def keep(global_params: Params) -> Params:
    """A copy of the global parameters: what an aggregation without usable updates returns."""
    return {k: v.clone() for k, v in global_params.items()}


def _cast(mean: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`mean` (float64) converted to `ref`'s dtype and device."""
    if ref.dtype == torch.bool:
        mean = mean >= 0.5
    elif not (ref.dtype.is_floating_point or ref.dtype.is_complex):
        mean = torch.round(mean)
    return mean.to(device=ref.device, dtype=ref.dtype).contiguous()
