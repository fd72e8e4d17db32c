"""Quantity skew: clients of very different sizes, each holding an i.i.d. sample of the data.

The labels are not skewed: every client's samples are a uniformly random subset, as in the IID
partition; only how many each client holds varies. This is the "quantity skew" of Li, Diao, Chen &
He, "Federated Learning on Non-IID Data Silos: An Experimental Study" (ICDE 2022, NIID-Bench,
https://arxiv.org/abs/2102.02079), §3.1.3: cut a random permutation of the samples into blocks of
drawn sizes. Where the client sizes come from is a subclass's business (`weights`): a lognormal
(lognormal.py) or a power law (powerlaw.py). NIID-Bench itself draws the proportions from a
Dirichlet and redraws them all until every client has at least 10 samples; here the minimum is
built into the sizes instead (below), so the draw never loops and holds for any number of clients.

From weights w_k > 0 (k = 1..N), n samples and a minimum m per client:

    R = n - N·m                              samples left after every client got its minimum
    s_k = m + floor(R · w_k / Σw) (+1)       the +1 for the R - Σ floor(...) clients with the largest
                                             fractional parts, lowest index first on ties
    client k = the k-th block of s_k samples of a random permutation (then sorted)

so Σ s_k = n exactly, min s_k ≥ m, and sizes are proportional to the weights above the minimum.
Everything is vectorised (one permutation, one sort, no per-client Python work beyond the final
split into views): 1,000,000 clients are a matter of seconds.
"""

from abc import abstractmethod

import torch

from fedsweep.data.base import Partition
from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition._common import check_clients, owner_of_permutation, parts_by_owner


def sizes_from_weights(weights: torch.Tensor, *, num_samples: int, min_samples: int) -> torch.Tensor:
    """Client sizes (int64) proportional to `weights` above `min_samples`, summing to `num_samples`.

    Largest-remainder rounding (Hamilton's method); the caller checked num_samples >= N·min_samples.
    """
    n_clients = weights.numel()
    rest = num_samples - n_clients * min_samples
    share = weights.to(torch.float64) / weights.to(torch.float64).sum() * rest
    base = torch.floor(share).to(torch.int64)
    short = rest - int(base.sum())
    # Float rounding can put `short` a little outside [0, N); clamp so coverage stays exact.
    if short > 0:
        fraction = share - base.to(torch.float64)
        order = torch.sort(fraction, descending=True, stable=True).indices
        base[order[: min(short, n_clients)]] += 1
        short -= min(short, n_clients)
        base[0] += short  # only after extreme float error; keeps Σ = num_samples
    elif short < 0:
        base[torch.argmax(base)] += short
    return base + min_samples


class QuantitySkew(Partition):
    """I.i.d. samples, client sizes from `weights`, at least `min_samples` each."""

    def __init__(self, *, min_samples: int = 1) -> None:
        if min_samples < 1:
            raise ValueError(f"partition.min_samples must be >= 1, got {min_samples}")
        self.min_samples = min_samples

    @abstractmethod
    def weights(self, *, num_clients: int, generator: torch.Generator) -> torch.Tensor:
        """Positive float64 relative size of each client, drawn only from `generator`."""

    def split(
        self,
        *,
        labels: torch.Tensor,
        num_clients: int,
        natural: list[torch.Tensor] | None,
        generator: torch.Generator,
    ) -> ClientIndex:
        """Draw the sizes, then cut a random permutation into blocks of those sizes; sorted int64 parts."""
        n = labels.shape[0]
        check_clients(num_samples=n, num_clients=num_clients, per_client=self.min_samples)
        weights = self.weights(num_clients=num_clients, generator=generator)
        sizes = sizes_from_weights(weights, num_samples=n, min_samples=self.min_samples)
        perm = torch.randperm(n, generator=generator)
        return parts_by_owner(owner_of_permutation(perm, sizes), num_clients=num_clients)
