"""Label-skewed partition: per-class client proportions drawn from Dirichlet(α).

Hsu, Qi & Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification" (2019), https://arxiv.org/abs/1909.06335; the per-class variant used by
Wang et al., "Federated Learning with Matched Averaging" (ICLR 2020), https://arxiv.org/abs/2002.06440.

For each class c, q_c ~ Dir(α·1_N) over the N clients and the class's samples (in a seeded random
order) are cut at the cumulative proportions. Small α gives each client few classes; large α tends
to i.i.d. Dirichlet draws use a numpy Generator seeded from the torch generator (torch's own gamma
sampler takes no generator), so the split is still a pure function of the generator's state.

Clients with fewer than `min_samples` samples are topped up deterministically: repeatedly, the
client holding the most samples (lowest index on ties) gives its most recently assigned sample to
the poorest client. Coverage stays exact because samples move, never copy.

The minimum is enforced, but not as NIID-Bench does it (Li et al., "Federated Learning on Non-IID
Data Silos", ICDE 2022, https://arxiv.org/abs/2102.02079, `partition.py` "noniid-labeldir"). There,
every Dirichlet draw is repeated until the smallest client has at least 10 samples (and a client
already holding more than n/N samples gets no more of the next class). Resampling keeps the split an
exact Dirichlet draw conditioned on the minimum, but the number of redraws grows without bound as
α shrinks and the clients multiply (measured with NIID-Bench's rule on 60,000 samples of 10
classes: one draw at α = 0.5 for 100 or 1,000 clients, 3 at α = 0.1 for 100, none of 50 succeeded
at α = 0.1 for 1,000). The top-up always ends, moves only the samples the minimum needs, and with
`min_samples` ≤ 1 and moderate α usually moves none; we keep it (and so every existing split).
Set `min_samples: 10` for NIID-Bench's minimum.

The rule of NIID-Bench's and of the power-of-choice authors' code (Cho, Wang & Joshi 2022,
https://arxiv.org/abs/2010.01243, `util_v4.py` `__getDirichletData__`; the same in NIID-Bench) is
available as three options, each off by default and part of a cell's identity only when set:

- `cap: true` — a client already holding ≥ n/N samples gets no share of the classes dealt after
  (q_c,k = 0 for those clients, the rest renormalised), so sizes stay near n/N;
- `redraw: true` — the whole split is drawn again, the generator running on, until every client has
  `min_samples` (the top-up then moves nothing); after `MAX_REDRAWS` draws it stops with an error;
- `split_seed: S` — the split draws from a generator seeded by S alone, so every seed of a sweep
  shares one split, as the authors' `RandomState(2020)` does (the run's seed still drives everything
  else). It is the authors' rule, not their bytes: the draws come from fedsweep's generators.
"""

import heapq
from typing import ClassVar

import numpy as np
import torch

from fedsweep.data.base import Partition, PartitionError
from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition._common import check_clients, seed_from, sorted_parts
from fedsweep.rng import generator as seeded

MAX_REDRAWS = 1000  # whole draws `redraw` tries before giving up


def dirichlet_parts(
    labels: torch.Tensor, *, num_clients: int, alpha: float, generator: torch.Generator, cap: bool = False
) -> list[list[int]]:
    """Per-client index lists from per-class Dirichlet(α) proportions (before any fix-up); with `cap`,
    clients already holding ≥ n/N samples get no share of the classes dealt after."""
    rng = np.random.default_rng(seed_from(generator))
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        idx = members[torch.randperm(members.numel(), generator=generator)].numpy()
        q = rng.dirichlet(np.full(num_clients, alpha))
        if cap:
            q = capped(q, np.array([len(p) for p in parts]), limit=labels.numel() / num_clients)
        cuts = np.floor(np.cumsum(q)[:-1] * len(idx)).astype(np.int64)
        for client, chunk in enumerate(np.split(idx, cuts)):
            parts[client].extend(chunk.tolist())
    return parts


def capped(q: np.ndarray, sizes: np.ndarray, *, limit: float) -> np.ndarray:
    """q with the shares of clients holding ≥ `limit` samples set to 0, renormalised (uniform over the
    others should every remaining share underflow to 0)."""
    open_ = sizes < limit  # never all closed: the sizes sum to fewer than n while samples remain
    q = q * open_
    return q / q.sum() if q.sum() > 0 else open_ / open_.sum()


def top_up(parts: list[list[int]], *, min_samples: int) -> None:
    """Move samples from the richest clients until every client has `min_samples` (in place)."""
    sizes = [len(p) for p in parts]
    # Max-heap on (size, lowest index) with lazy deletion: stale entries are skipped when popped.
    heap = [(-size, i) for i, size in enumerate(sizes)]
    heapq.heapify(heap)
    for poor in range(len(parts)):
        while sizes[poor] < min_samples:
            neg, rich = heapq.heappop(heap)
            if -neg != sizes[rich]:
                continue
            # `rich` is never `poor`: the caller checked num_samples >= num_clients * min_samples.
            parts[poor].append(parts[rich].pop())
            sizes[poor] += 1
            sizes[rich] -= 1
            heapq.heappush(heap, (-sizes[rich], rich))
            heapq.heappush(heap, (-sizes[poor], poor))


class Dirichlet(Partition):
    """Per-class Dirichlet(α) label skew with at least `min_samples` per client."""

    # Added after cells were keyed: left out of the cell key at these values (fedsweep/config/schema.py).
    KEY_BASELINES: ClassVar[dict[str, object]] = {"split_seed": None, "cap": False, "redraw": False}

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        min_samples: int = 1,
        split_seed: int | None = None,
        cap: bool = False,
        redraw: bool = False,
    ) -> None:
        if not alpha > 0:
            raise ValueError(f"partition.alpha must be > 0, got {alpha}")
        if min_samples < 0:
            raise ValueError(f"partition.min_samples must be >= 0, got {min_samples}")
        if split_seed is not None and (isinstance(split_seed, bool) or split_seed < 0):
            raise ValueError(f"partition.split_seed must be null or an integer >= 0, got {split_seed}")
        self.alpha = float(alpha)
        self.min_samples = min_samples
        self.split_seed = split_seed
        self.cap = bool(cap)
        self.redraw = bool(redraw)

    def split(
        self,
        *,
        labels: torch.Tensor,
        num_clients: int,
        natural: list[torch.Tensor] | None,
        generator: torch.Generator,
    ) -> ClientIndex:
        """Dirichlet label skew (redrawn while a client is short, with `redraw`), then the deterministic
        top-up; sorted int64 parts."""
        check_clients(num_samples=labels.shape[0], num_clients=num_clients, per_client=self.min_samples)
        if self.split_seed is not None:
            generator = seeded("dirichlet-split", self.split_seed)
        for _ in range(MAX_REDRAWS if self.redraw else 1):
            parts = dirichlet_parts(
                labels, num_clients=num_clients, alpha=self.alpha, generator=generator, cap=self.cap
            )
            if min(len(p) for p in parts) >= self.min_samples:
                break
        else:
            if self.redraw:
                raise PartitionError(
                    f"partition.redraw: none of {MAX_REDRAWS} Dirichlet draws gave all {num_clients} clients "
                    f"partition.min_samples={self.min_samples} samples (alpha={self.alpha}); raise alpha, "
                    "lower min_samples or set redraw=false (the top-up)"
                )
        top_up(parts, min_samples=self.min_samples)
        return sorted_parts([torch.tensor(p, dtype=torch.int64) for p in parts])
