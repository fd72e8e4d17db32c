"""Quantity skew with power-law client sizes (LEAF's "number of samples per device follows a power law").

Caldas et al., "LEAF: A Benchmark for Federated Settings" (2018), https://arxiv.org/abs/1812.01097,
and Li et al., "Federated Optimization in Heterogeneous Networks" (FedProx, MLSys 2020), §5.1, both
describe device sizes that follow a power law but give no exponent, and their generators draw
lognormal counts (see lognormal.py). Here the sizes are a true (Pareto) power law, drawn by inverse
transform as in Clauset, Shalizi & Newman, "Power-Law Distributions in Empirical Data" (SIAM Review
2009), https://arxiv.org/abs/0706.1062, eq. (D.4) with x_min = 1:

    p(w) ∝ w^-a  for w ≥ 1        w_k = (1 - u_k)^(-1 / (a - 1)),  u_k ~ U[0, 1)

then the sizes follow quantity.py: proportional to w above `min_samples`, summing to n exactly.
The exponent a > 1 sets the tail: a = 2.5 (default) has a finite mean and an infinite variance, so
a few clients hold much of the data; a ≤ 2 lets the largest client take most of it; a large a
tends to equal sizes.
"""

import torch

from fedsweep.data.partition.quantity import QuantitySkew


class PowerLaw(QuantitySkew):
    """Client sizes ∝ Pareto draws with density ∝ w^-exponent, i.i.d. labels."""

    def __init__(self, *, exponent: float = 2.5, min_samples: int = 1) -> None:
        if not exponent > 1:
            raise ValueError(f"partition.exponent must be > 1, got {exponent}")
        super().__init__(min_samples=min_samples)
        self.exponent = float(exponent)

    def weights(self, *, num_clients: int, generator: torch.Generator) -> torch.Tensor:
        """w_k = (1 - u_k)^(-1/(a-1)), computed in log space so no draw overflows."""
        u = torch.rand(num_clients, dtype=torch.float64, generator=generator)
        logw = -torch.log1p(-u) / (self.exponent - 1.0)
        return torch.exp(logw - logw.max())
