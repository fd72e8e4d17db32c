"""Quantity skew with lognormal client sizes (the "unbalanced" setting of FedDyn).

Acar et al., "Federated Learning Based on Dynamic Regularization" (ICLR 2021),
https://arxiv.org/abs/2111.04263, §5 ("unbalanced": "the number of datapoints of each device
follows a lognormal distribution" with σ = 0.3), reference code `utils_dataset.py`
(`np.random.lognormal(mean=log(n/N), sigma=unbalanced_sgm, size=N)`, rescaled to n samples). The
same lognormal sizes are FedLab's `unbalance_sgm` splits and LEAF/FedProx's Synthetic data
(lognormal(4, 2) samples per device).

    w_k ~ LogNormal(0, σ²)     (the mean μ = log(n/N) cancels when the sizes are rescaled to n)

then the sizes follow quantity.py: proportional to w above `min_samples`, summing to n exactly.
Where the reference differs: it truncates `w/Σw·n` to ints and adds the shortfall to one client
(its code) and has no minimum; here the shortfall goes to the largest remainders and every client
holds at least `min_samples`. σ → 0 gives near-equal sizes (the IID partition); σ = 1 spreads them
over about an order of magnitude; σ = 2 is LEAF's heavy tail.
"""

import torch

from fedsweep.data.partition.quantity import QuantitySkew


class LogNormal(QuantitySkew):
    """Client sizes ∝ LogNormal(0, σ²) draws (FedDyn's unbalanced split), i.i.d. labels."""

    def __init__(self, *, sigma: float = 0.3, min_samples: int = 1) -> None:
        if not sigma >= 0:
            raise ValueError(f"partition.sigma must be >= 0, got {sigma}")
        super().__init__(min_samples=min_samples)
        self.sigma = float(sigma)

    def weights(self, *, num_clients: int, generator: torch.Generator) -> torch.Tensor:
        """w_k = exp(σ z_k), z_k ~ N(0, 1)."""
        z = torch.randn(num_clients, dtype=torch.float64, generator=generator)
        # Normalised by the largest exponent so that σ = 2 with a million clients cannot overflow.
        logw = self.sigma * z
        return torch.exp(logw - logw.max())
