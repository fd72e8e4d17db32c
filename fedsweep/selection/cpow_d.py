"""Computation-efficient power-of-choice (cpow-d): pow-d whose candidates estimate their loss on a
mini-batch of b of their samples instead of all of them.

Cho, Wang and Joshi 2022, "Towards Understanding Biased Client Selection in Federated Learning",
AISTATS, https://arxiv.org/abs/2010.01243, Section 4 (π_cpow-d): candidate k sends
Σ_{ξ ∈ ξ_k} f(w̄^(t), ξ) / b over b samples ξ_k drawn from its data. Everything else is pow-d's
(fedsweep/selection/pow_d.py: candidates ∝ data size, the m largest, weights 1/m).

Choices: b = 64 (the default `b` of Flower's power-of-choice baseline; the paper leaves b a parameter);
the b samples are drawn without replacement from generator(seed, "probe", round, client), so a
resumed run probes the same ones; a candidate with fewer than b samples uses all of them.
"""

from fedsweep.selection.pow_d import PowD


class CPowD(PowD):
    """pow-d with each candidate's loss estimated on b of its samples."""

    def __init__(self, *, d: int | None = None, b: int = 64) -> None:
        super().__init__(d=d)
        if b < 1:
            raise ValueError(f"b must be >= 1, got {b}")
        self.samples = b

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, b={self.samples})"
