"""Multinomial logistic regression: flatten, then one linear layer producing logits.

The convex baseline of federated optimisation papers, e.g. on Synthetic(α, β) and MNIST in
Li et al. 2020, "Federated Optimization in Heterogeneous Networks" (FedProx),
https://arxiv.org/abs/1812.06127. The softmax lives in the loss (cross-entropy on logits).
"""

import math

import torch
from torch import nn


class LogisticRegression(nn.Module):
    """Flatten → Linear(prod(input_shape), num_classes); outputs logits."""

    def __init__(self, *, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        in_features = math.prod(int(d) for d in input_shape)
        if in_features <= 0 or num_classes <= 0:
            raise ValueError(f"LogisticRegression needs positive sizes, got {input_shape=}, {num_classes=}")
        self.linear = nn.Linear(in_features, int(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.linear(x.flatten(1))
