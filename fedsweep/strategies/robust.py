"""Byzantine-robust aggregation maths as pure functions over tensors, and the per-tensor plumbing
that keeps memory bounded (used by fedmedian.py, trimmedmean.py, krum.py, bulyan.py).

Memory rule (fedsweep/strategies/base.py): a robust rule holds at most clients-per-round × one
tensor. Coordinate-wise rules (`per_tensor`) stack one tensor at a time with `results.stack`. Krum and
Bulyan need distances over the whole flattened update: `pairwise_sq_distances` adds each tensor's
K × K contribution ‖x_i − x_j‖² = ‖x_i‖² + ‖x_j‖² − 2⟨x_i, x_j⟩ (in float64) and drops the stack, so
it holds K × the largest tensor plus K × K numbers; the chosen clients are then averaged in a second,
streaming pass (`mean_of`). Distances between parameters equal distances between updates (the global
model cancels), so no update is ever materialised.

Ties are broken towards the lower client id (stable sorts), so a rerun selects the same clients.
"""

from collections.abc import Callable, Iterable

import torch

from fedsweep.strategies.aggregate import RunningMean, cast_like
from fedsweep.strategies.base import ClientResults
from fedsweep.weights import Params


def coordinate_median(stacked: torch.Tensor) -> torch.Tensor:
    """Median over dim 0; for an even count the mean of the two middle values (as numpy's median,
    Flower's FedMedian; torch.median would return the lower one)."""
    s = stacked.sort(dim=0).values
    k = s.shape[0]
    return s[k // 2] if k % 2 else (s[k // 2 - 1] + s[k // 2]) / 2


def trimmed_mean(stacked: torch.Tensor, trim: int) -> torch.Tensor:
    """Mean over dim 0 after dropping the `trim` largest and `trim` smallest values per coordinate."""
    k = stacked.shape[0]
    if not 0 <= 2 * trim < k:
        raise ValueError(f"trimmed_mean: cannot trim {trim} from each side of {k} values")
    return stacked.sort(dim=0).values[trim : k - trim].mean(dim=0)


CHUNK = 1 << 16  # coordinates converted to float64 at a time: K × 64 Ki × 8 bytes (50 MiB at K = 100)


def sq_distances(flat: torch.Tensor) -> torch.Tensor:
    """K × K squared Euclidean distances between the rows of `flat` (float64, diagonal 0); the Gram
    matrix is summed over column chunks so that no float64 copy of `flat` is made."""
    gram = torch.zeros(flat.shape[0], flat.shape[0], dtype=torch.float64)
    for start in range(0, flat.shape[1], CHUNK):
        block = flat[:, start : start + CHUNK].double()
        gram += block @ block.T
    norms = gram.diagonal()
    d = (norms[:, None] + norms[None, :] - 2.0 * gram).clamp_min(0.0)
    return d.fill_diagonal_(0.0)


def pairwise_sq_distances(results: ClientResults, names: Iterable[str]) -> torch.Tensor:
    """Σ over tensors `names` of their K × K squared distances, one stacked tensor at a time."""
    k = len(results)
    total = torch.zeros(k, k, dtype=torch.float64)
    for name in names:
        total += sq_distances(results.stack(name).reshape(k, -1))
    return total


def krum_scores(d: torch.Tensor, f: int) -> torch.Tensor:
    """Krum's score of each of the n points: the sum of its squared distances to its n − f − 2
    nearest neighbours (at least 1, at most n − 1; 0 for a single point)."""
    n = d.shape[0]
    c = min(max(1, n - f - 2), n - 1)
    if c <= 0:
        return torch.zeros(n, dtype=torch.float64)
    others = d + torch.diag(torch.full((n,), float("inf"), dtype=d.dtype))
    return others.sort(dim=1).values[:, :c].sum(dim=1)


def krum_select(d: torch.Tensor, f: int, m: int) -> list[int]:
    """Indices of the `m` lowest Krum scores (Multi-Krum; m = 1 is Krum), in increasing score."""
    order = torch.sort(krum_scores(d, f), stable=True).indices
    return order[:m].tolist()


def bulyan_select(d: torch.Tensor, f: int) -> list[int]:
    """Bulyan's selection set: θ = n − 2f points, each the Krum choice among those not yet chosen."""
    remaining = list(range(d.shape[0]))
    chosen: list[int] = []
    for _ in range(d.shape[0] - 2 * f):
        sub = d[remaining][:, remaining]
        pick = remaining[krum_select(sub, f, 1)[0]]
        chosen.append(pick)
        remaining.remove(pick)
    return chosen


def closest_to_median_mean(stacked: torch.Tensor, beta: int) -> torch.Tensor:
    """Per coordinate, the mean of the `beta` values closest to the coordinate-wise median
    (Bulyan's second stage)."""
    median = coordinate_median(stacked)
    order = torch.sort((stacked - median).abs(), dim=0, stable=True).indices[:beta]
    return torch.gather(stacked, 0, order).mean(dim=0)


def per_tensor(
    global_params: Params, results: ClientResults, rule: Callable[[torch.Tensor], torch.Tensor]
) -> Params:
    """A coordinate-wise `rule` (over dim 0 of a K × coordinates float64 block) applied to each tensor
    stacked over the clients, a chunk of coordinates at a time, and cast like the global tensor
    (integer buffers rounded, as FedAvg's mean). Holds K × one tensor, plus K × CHUNK in float64."""
    out: Params = {}
    for name, ref in global_params.items():
        flat = results.stack(name).reshape(len(results), -1)
        merged = torch.empty(flat.shape[1], dtype=torch.float64)
        for start in range(0, flat.shape[1], CHUNK):
            merged[start : start + CHUNK] = rule(flat[:, start : start + CHUNK].double())
        out[name] = cast_like(merged.reshape(ref.shape), ref)
    return out


def mean_of(
    global_params: Params, results: ClientResults, chosen: Iterable[int], *, weighted: bool = False
) -> Params:
    """The mean of the chosen results (indices in iteration order), in one streaming pass: unweighted,
    or `weighted` by each result's aggregation weight (its sample count unless the selector set one)."""
    picked = set(chosen)
    acc = RunningMean()
    for i, result in enumerate(results):
        if i in picked:
            acc.add(result.params, float(result.weight) if weighted else 1.0)
    return acc.result(global_params)


def float_names(params: Params) -> list[str]:
    """The floating-point tensors' names: distances ignore integer buffers (`num_batches_tracked`)."""
    return [k for k, v in params.items() if v.is_floating_point()]
