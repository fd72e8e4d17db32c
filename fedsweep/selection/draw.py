"""Draws and orders shared by the selectors: pure functions over tensors, tested alone.

Every draw takes the round's generator (fedsweep/selection/base.py), so a selector that uses them
stays a pure function of its arguments. Orders are stable: ties keep the order of the input (the
selectors pass clients in increasing id), so a tie never depends on the sort's implementation.
"""

import torch


def check_round(available: torch.Tensor, k: int, owner: str) -> None:
    """ValueError naming `owner` unless k >= 0 and `available` is what the contract promises (a 1-D
    int64 tensor of distinct ids in increasing order): one vectorised comparison, no copy."""
    if k < 0:
        raise ValueError(f"{owner}: k must be >= 0, got {k}")
    if not isinstance(available, torch.Tensor) or available.dtype != torch.int64 or available.dim() != 1:
        raise ValueError(f"{owner}: `available` must be a 1-D int64 tensor of client ids")
    if bool((available[1:] <= available[:-1]).any()):
        raise ValueError(
            f"{owner}: `available` holds duplicate or unsorted client ids (it must be increasing)"
        )


def descending(values: torch.Tensor) -> torch.Tensor:
    """Indices that sort `values` from largest to smallest; equal values keep their input order."""
    return torch.sort(values, descending=True, stable=True).indices


def ascending(values: torch.Tensor) -> torch.Tensor:
    """Indices that sort `values` from smallest to largest; equal values keep their input order."""
    return torch.sort(values, stable=True).indices


def largest(values: torch.Tensor, n: int) -> torch.Tensor:
    """The first n of `descending(values)` in O(len) plus a sort of n: the n largest, ties by position."""
    if n >= values.numel():
        return descending(values)
    if n <= 0:
        return torch.zeros(0, dtype=torch.int64)
    nth = torch.kthvalue(values, values.numel() - n + 1).values  # the n-th largest value
    above = torch.nonzero(values > nth).flatten()
    ties = torch.nonzero(values == nth).flatten()[: n - above.numel()]
    picked = torch.cat([above, ties])
    return picked[descending(values[picked])]


def weighted_sample(weights: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n distinct indices drawn one after another with probability proportional to `weights` among
    those not yet drawn (successive sampling, as numpy's `choice(replace=False, p=...)`).

    Weights must be finite and >= 0. Zero weights get a floor of 1e-12 times the largest weight
    (1e-12 when all are zero: then the draw is uniform), so n <= len(weights) draws always exist and
    a zero-weight index is drawn only once every positive one is taken, or nearly so.
    """
    if not 0 <= n <= weights.numel():
        raise ValueError(f"weighted_sample: cannot draw {n} of {weights.numel()}")
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    w = weights.to(torch.float64)
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("weighted_sample: weights must be finite and >= 0")
    top = float(w.max())
    w = w.clamp_min(1e-12 * top if top > 0 else 1e-12)
    return torch.multinomial(w, n, replacement=False, generator=generator)


def uniform_sample(n_items: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n distinct indices of range(n_items), uniformly (the first n of a seeded permutation)."""
    if not 0 <= n <= n_items:
        raise ValueError(f"uniform_sample: cannot draw {n} of {n_items}")
    return torch.randperm(n_items, generator=generator)[:n]


def at_most(ids: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """`ids` itself when it holds at most n, else n of them uniformly at random, in their input
    order (nothing is drawn in the first case: small populations keep their exact computation)."""
    if ids.numel() <= n:
        return ids
    return ids[torch.sort(torch.randperm(ids.numel(), generator=generator)[:n]).values]
